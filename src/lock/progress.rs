//! What a long fetch shows while it runs: indicatif bars on a terminal (a spinner with the
//! current step, a byte bar per download), plain lines otherwise (CI logs, tests), one per
//! finished item, so the output of a run without a terminal does not depend on timing.

use std::fmt::Display;
use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress of a whole command.
#[derive(Debug, Clone)]
pub struct Progress {
    bars: Option<(MultiProgress, ProgressBar)>,
}

/// One download's bar (nothing without a terminal).
#[derive(Debug)]
pub struct Transfer {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise.
    pub fn for_stderr() -> Self {
        Self::new(std::io::stderr().is_terminal())
    }

    pub fn new(interactive: bool) -> Self {
        if !interactive {
            return Self { bars: None };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let spinner = multi.add(ProgressBar::new_spinner());
        spinner.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        spinner.enable_steady_tick(Duration::from_millis(120));
        Self {
            bars: Some((multi, spinner)),
        }
    }

    /// A finished item, printed above the bars.
    pub fn line(&self, text: impl Display) {
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(text.to_string());
            }
            None => eprintln!("{text}"),
        }
    }

    /// What is going on now (shown only on a terminal).
    pub fn status(&self, text: impl Display) {
        if let Some((_, spinner)) = &self.bars {
            spinner.set_message(text.to_string());
        }
    }

    /// A byte bar for one download.
    pub fn transfer(&self, label: &str, size: Option<u64>) -> Transfer {
        let Some((multi, _)) = &self.bars else {
            return Transfer { bar: None };
        };
        let bar = multi.add(ProgressBar::new(size.unwrap_or(0)));
        let template = if size.is_some() {
            "  {msg:40!} {bytes:>10}/{total_bytes:10} {binary_bytes_per_sec:>12} {eta:>4}"
        } else {
            "  {msg:40!} {bytes:>10} {binary_bytes_per_sec:>12}"
        };
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(label.to_owned());
        Transfer { bar: Some(bar) }
    }

    /// Clears the bars.
    pub fn finish(&self) {
        if let Some((multi, spinner)) = &self.bars {
            spinner.finish_and_clear();
            let _ = multi.clear();
        }
    }
}

impl Transfer {
    pub fn set(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
