//! A grouped bar chart drawn as SVG: groups along the x axis (a percentile, a change), one bar
//! per series in each group, the figure written above each bar, an optional goal line, and
//! the run's notes (command, date, load) under the chart. Logarithmic charts plot log10 of
//! each figure and label the axis with the figures themselves.

use plotters::prelude::*;

/// Width and height of every chart, in SVG pixels.
const SIZE: (u32, u32) = (760, 440);

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart `{title}`: {reason}")]
pub struct DrawError {
    title: String,
    reason: String,
}

/// One figure, or a range where the source gives one (the field's "7.3-7.8 ms").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figure {
    pub low: f64,
    pub high: f64,
}

impl Figure {
    pub fn one(value: f64) -> Self {
        Self {
            low: value,
            high: value,
        }
    }
}

/// A series: one bar per group, `None` where its source has no such figure.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: RGBColor,
    pub figures: Vec<Option<Figure>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// For figures spanning orders of magnitude (bytes from hundreds to gigabytes).
    Log,
}

/// What a chart shows; [`BarChart::svg`] draws it.
#[derive(Debug, Clone)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub scale: Scale,
    /// Formats a figure for the axis and the bar labels (`4.0 s`, `1.2 MB`).
    pub format: fn(f64) -> String,
    pub groups: Vec<String>,
    pub series: Vec<Series>,
    pub goal: Option<(f64, String)>,
    pub notes: Vec<String>,
}

impl BarChart {
    pub fn svg(&self) -> Result<String, DrawError> {
        let mut svg = String::new();
        self.draw(&mut svg).map_err(|reason| DrawError {
            title: self.title.clone(),
            reason,
        })?;
        Ok(svg)
    }

    fn plotted(&self, value: f64) -> f64 {
        match self.scale {
            Scale::Linear => value,
            Scale::Log => value.max(1.0).log10(),
        }
    }

    fn y_range(&self) -> (f64, f64) {
        let highest = self
            .series
            .iter()
            .flat_map(|series| series.figures.iter().flatten())
            .map(|figure| figure.high)
            .chain(self.goal.iter().map(|(value, _)| *value))
            .fold(0.0_f64, f64::max);
        match self.scale {
            Scale::Linear => (0.0, (highest * 1.2).max(1.0)),
            Scale::Log => {
                let lowest = self
                    .series
                    .iter()
                    .flat_map(|series| series.figures.iter().flatten())
                    .map(|figure| figure.low.max(1.0).log10())
                    .fold(f64::INFINITY, f64::min);
                (
                    (lowest.floor() - 1.0).max(0.0),
                    highest.max(10.0).log10().ceil() + 0.5,
                )
            }
        }
    }

    fn draw(&self, svg: &mut String) -> Result<(), String> {
        let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|err| err.to_string())?;
        let lines: Vec<String> = self.notes.iter().flat_map(|note| wrap(note)).collect();
        let note_height = 18 * lines.len() as u32 + 8;
        let (plot, notes) = root.split_vertically(SIZE.1 - note_height);
        let (y_low, y_high) = self.y_range();
        let groups = self.groups.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(84)
            .build_cartesian_2d(0.0..groups, y_low..y_high)
            .map_err(|err| err.to_string())?;
        let format = self.format;
        let scale = self.scale;
        let axis_label = move |y: &f64| match scale {
            Scale::Linear => format(*y),
            Scale::Log => format(10f64.powf(*y)),
        };
        let group_label = |x: &f64| {
            let index = x.floor() as usize;
            let centred = (x - index as f64 - 0.5).abs() < 1e-9;
            match self.groups.get(index) {
                Some(name) if centred => name.clone(),
                _ => String::new(),
            }
        };
        let y_labels = match self.scale {
            Scale::Linear => 6,
            Scale::Log => (y_high - y_low).floor() as usize + 1,
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(self.groups.len() * 2 + 1)
            .x_label_formatter(&group_label)
            .y_labels(y_labels)
            .y_label_formatter(&axis_label)
            .y_desc(self.y_label.as_str())
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|err| err.to_string())?;

        let count = self.series.len().max(1) as f64;
        let width = 0.8 / count;
        for (s, series) in self.series.iter().enumerate() {
            let style = series.color.filled();
            let mut bars = Vec::new();
            let mut labels = Vec::new();
            for (g, figure) in series.figures.iter().enumerate() {
                let Some(figure) = figure else { continue };
                let left = g as f64 + 0.1 + s as f64 * width;
                let right = left + width * 0.92;
                let top = self.plotted(figure.high);
                bars.push(Rectangle::new([(left, y_low), (right, top)], style));
                let text = if figure.low == figure.high {
                    format(figure.high)
                } else {
                    format!("{}-{}", format(figure.low), format(figure.high))
                };
                labels.push(Text::new(
                    text,
                    (left, top + (y_high - y_low) * 0.045),
                    ("sans-serif", 12),
                ));
            }
            chart
                .draw_series(bars)
                .map_err(|err| err.to_string())?
                .label(series.name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], style));
            chart.draw_series(labels).map_err(|err| err.to_string())?;
        }
        if let Some((goal, name)) = &self.goal {
            let y = self.plotted(*goal);
            let red = RGBColor(200, 30, 30);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, y), (groups, y)],
                    red.stroke_width(2),
                )))
                .map_err(|err| err.to_string())?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], red));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|err| err.to_string())?;
        for (i, note) in lines.iter().enumerate() {
            notes
                .draw(&Text::new(
                    note.as_str(),
                    (16, 4 + 18 * i as i32),
                    ("sans-serif", 12).into_font().color(&RGBColor(80, 80, 80)),
                ))
                .map_err(|err| err.to_string())?;
        }
        root.present().map_err(|err| err.to_string())?;
        Ok(())
    }
}

/// The characters of a note's line at 12 px that fit across the chart.
const NOTE_CHARS: usize = 118;

/// A note cut into lines at spaces, each at most [`NOTE_CHARS`] long (a longer word stays
/// whole).
fn wrap(note: &str) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in note.split(' ') {
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > NOTE_CHARS {
            lines.push(word.to_owned());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_note_is_cut_at_spaces_to_fit_the_chart() {
        let note = "word ".repeat(60);
        let lines = wrap(note.trim_end());
        assert!(lines.len() > 1, "{lines:?}");
        assert!(
            lines.iter().all(|line| line.chars().count() <= NOTE_CHARS),
            "{lines:?}"
        );
        assert_eq!(lines.join(" "), note.trim_end());
        assert_eq!(wrap("short"), ["short"]);
    }
}
