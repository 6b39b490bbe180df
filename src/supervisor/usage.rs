//! The usage log: who used the GPU, on which pod, for how long. Each pod appends JSON lines
//! to its own file, `<volume>/.podstack/sessions/<pod>.jsonl` (opened with O_APPEND, one write
//! per line), so pods sharing a volume never write the same file; the summary reads every
//! pod's file and sums GPU hours per user for a month, skipping a line a crash tore.
//!
//! A session is the lines of one user that share its `session` id (its start time): `started`,
//! `ready`, `running` (written now and then while it runs), `stopped`. Slots started in the
//! same millisecond write the same id for different users, which stay apart. A session
//! without a `stopped` line (the pod died) ends at its last line.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

use super::launch::PodId;
use crate::service::state::UnixMillis;

/// One line of a pod's usage log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLine {
    /// The session's id: when it started.
    pub session: UnixMillis,
    /// When this line was written.
    pub at: UnixMillis,
    pub user: String,
    /// The GPU's name, or `None` on the CPU.
    pub gpu: Option<String>,
    #[serde(flatten)]
    pub event: SessionEvent,
}

/// What a line records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum SessionEvent {
    Started,
    Ready,
    /// Still running; bounds the loss when the pod dies without a `stopped` line.
    Running,
    Stopped {
        reason: String,
    },
}

/// Why the usage log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("could not write the usage log {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("could not read the usage logs in {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
}

/// This pod's usage log, open for appending.
#[derive(Debug)]
pub struct UsageLog {
    file: File,
    path: PathBuf,
}

impl UsageLog {
    /// Opens (or creates) `<sessions_dir>/<pod>.jsonl`. A line torn by a crash is closed with
    /// a newline first, so the next line stays whole.
    pub fn open(sessions_dir: &Path, pod: &PodId) -> Result<Self, UsageError> {
        let path = sessions_dir.join(format!("{}.jsonl", pod.as_str()));
        let failed = |source| UsageError::Write {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(sessions_dir).map_err(failed)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(failed)?;
        if file.seek(SeekFrom::End(0)).map_err(failed)? > 0 {
            let mut last = [0u8];
            file.seek(SeekFrom::End(-1)).map_err(failed)?;
            file.read_exact(&mut last).map_err(failed)?;
            if last != *b"\n" {
                file.write_all(b"\n").map_err(failed)?;
            }
        }
        Ok(Self { file, path })
    }

    /// Appends one line in one write.
    pub fn record(&mut self, line: &SessionLine) -> Result<(), UsageError> {
        let mut bytes = serde_json::to_vec(line).map_err(|err| UsageError::Write {
            path: self.path.clone(),
            source: err.into(),
        })?;
        bytes.push(b'\n');
        self.file
            .write_all(&bytes)
            .map_err(|source| UsageError::Write {
                path: self.path.clone(),
                source,
            })
    }
}

/// A calendar month in UTC, written `2026-05`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    year: u16,
    month: u8,
}

const DAY_MS: u64 = 86_400_000;

impl Month {
    /// The month `at` falls in.
    pub fn containing(at: UnixMillis) -> Self {
        // Howard Hinnant's civil_from_days, for days since 1970-01-01.
        let days = i64::try_from(at / DAY_MS).unwrap_or(i64::MAX / 2) + 719_468;
        let era = days.div_euclid(146_097);
        let day_of_era = days.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted = (5 * day_of_year + 2) / 153;
        let month = if shifted < 10 {
            shifted + 3
        } else {
            shifted - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        Self {
            year: u16::try_from(year).unwrap_or(u16::MAX),
            month: u8::try_from(month).unwrap_or(12),
        }
    }

    /// The first millisecond of the month.
    fn start(self) -> UnixMillis {
        // Howard Hinnant's days_from_civil, for the first of the month.
        let (year, month) = (i64::from(self.year), i64::from(self.month));
        let year = if month <= 2 { year - 1 } else { year };
        let era = year.div_euclid(400);
        let year_of_era = year - era * 400;
        let day_of_year = (153 * ((month + 9) % 12) + 2) / 5;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        let days = era * 146_097 + day_of_era - 719_468;
        u64::try_from(days).unwrap_or(0) * DAY_MS
    }

    fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year.saturating_add(1),
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }
}

impl FromStr for Month {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a month; write it as YYYY-MM, e.g. `2026-05`");
        let (year, month) = s.split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad());
        }
        let year: u16 = year.parse().map_err(|_| bad())?;
        let month: u8 = month.parse().map_err(|_| bad())?;
        if year < 1970 || !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(Self { year, month })
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Serialize for Month {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Usage per user in one month, across every pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageSummary {
    pub month: Month,
    /// By user name.
    pub users: Vec<UserUsage>,
    /// Lines that could not be read (a torn last line after a crash, or damage).
    pub unreadable_lines: usize,
}

/// One user's usage in a month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserUsage {
    pub user: String,
    /// Hours on any GPU.
    pub gpu_hours: f64,
    /// Hours per GPU name; CPU sessions are under `cpu` and are not GPU hours.
    pub hours_by_gpu: BTreeMap<String, f64>,
    pub sessions: u32,
    /// A session of this user runs on this pod now; its hours count up to the answer.
    pub running: bool,
}

/// A session this pod runs now (one per busy slot), counted up to `now` rather than to its
/// last line (a `running` line is written only every few minutes).
#[derive(Debug, Clone, Copy)]
pub struct LiveSession<'a> {
    /// This pod's id: its usage file is `<pod>.jsonl`.
    pub pod: &'a str,
    pub user: &'a str,
    pub now: UnixMillis,
}

/// A session pieced together from its lines.
struct Session {
    user: String,
    gpu: Option<String>,
    end: UnixMillis,
    stopped: bool,
    running: bool,
}

/// Sums the hours of every pod's sessions that overlap `month`.
pub fn summarise(sessions_dir: &Path, month: Month) -> Result<UsageSummary, UsageError> {
    summarise_live(sessions_dir, month, &[])
}

/// [`summarise`], with each session `live` names counted up to its `now`: the newest session
/// of that user in that pod's file, when it has no `stopped` line.
pub fn summarise_live(
    sessions_dir: &Path,
    month: Month,
    live: &[LiveSession<'_>],
) -> Result<UsageSummary, UsageError> {
    let mut summary = UsageSummary {
        month,
        users: Vec::new(),
        unreadable_lines: 0,
    };
    let entries = match fs::read_dir(sessions_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(summary),
        Err(source) => {
            return Err(UsageError::Read {
                path: sessions_dir.to_owned(),
                source,
            })
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    files.sort();
    let (from, to) = (month.start(), month.next().start());
    let mut users: BTreeMap<String, UserUsage> = BTreeMap::new();
    for path in files {
        let bytes = fs::read(&path).map_err(|source| UsageError::Read {
            path: path.clone(),
            source,
        })?;
        let mut sessions: BTreeMap<(UnixMillis, String), Session> = BTreeMap::new();
        for raw in String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|raw| !raw.trim().is_empty())
        {
            let Ok(line) = serde_json::from_str::<SessionLine>(raw) else {
                summary.unreadable_lines += 1;
                continue;
            };
            let key = (line.session, line.user.clone());
            let session = sessions.entry(key).or_insert_with(|| Session {
                user: line.user.clone(),
                gpu: line.gpu.clone(),
                end: line.session,
                stopped: false,
                running: false,
            });
            session.end = match line.event {
                SessionEvent::Stopped { .. } => {
                    session.stopped = true;
                    line.at
                }
                _ => session.end.max(line.at),
            };
        }
        let own = live.iter().filter(|live| {
            path.file_stem()
                .is_some_and(|stem| stem.to_str() == Some(live.pod))
        });
        for live in own {
            let newest = sessions
                .values_mut()
                .rev()
                .find(|session| session.user == live.user);
            if let Some(session) = newest.filter(|session| !session.stopped) {
                session.end = session.end.max(live.now);
                session.running = true;
            }
        }
        for ((start, _), session) in sessions {
            let overlap = session.end.min(to).saturating_sub(start.max(from));
            if overlap == 0 && !(from..to).contains(&start) {
                continue;
            }
            #[allow(clippy::cast_precision_loss)] // milliseconds far below 2^53
            let hours = overlap as f64 / 3_600_000.0;
            let usage = users
                .entry(session.user.clone())
                .or_insert_with(|| UserUsage {
                    user: session.user.clone(),
                    gpu_hours: 0.0,
                    hours_by_gpu: BTreeMap::new(),
                    sessions: 0,
                    running: false,
                });
            usage.sessions += 1;
            usage.running |= session.running && (from..to).contains(&session.end);
            *usage
                .hours_by_gpu
                .entry(session.gpu.clone().unwrap_or_else(|| "cpu".to_owned()))
                .or_default() += hours;
            if session.gpu.is_some() {
                usage.gpu_hours += hours;
            }
        }
    }
    summary.users = users.into_values().collect();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;
    /// 2026-05-01T00:00:00Z.
    const MAY: u64 = 1_777_593_600_000;

    fn line(
        session: u64,
        at: u64,
        user: &str,
        gpu: Option<&str>,
        event: SessionEvent,
    ) -> SessionLine {
        SessionLine {
            session,
            at,
            user: user.to_owned(),
            gpu: gpu.map(str::to_owned),
            event,
        }
    }

    fn stopped() -> SessionEvent {
        SessionEvent::Stopped {
            reason: "stopped by the user".to_owned(),
        }
    }

    #[test]
    fn writes_one_json_line_per_event() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = dir.path().join(".podstack/sessions");
        let pod = PodId::parse("pod-a").unwrap();
        let mut log = UsageLog::open(&sessions, &pod).unwrap();
        log.record(&line(
            MAY,
            MAY,
            "alice",
            Some("NVIDIA B200"),
            SessionEvent::Started,
        ))
        .unwrap();
        log.record(&line(
            MAY,
            MAY + HOUR,
            "alice",
            Some("NVIDIA B200"),
            stopped(),
        ))
        .unwrap();
        let text = fs::read_to_string(sessions.join("pod-a.jsonl")).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"session\":{MAY},\"at\":{MAY},\"user\":\"alice\",\"gpu\":\"NVIDIA B200\",\"event\":\"started\"}}\n\
                 {{\"session\":{MAY},\"at\":{},\"user\":\"alice\",\"gpu\":\"NVIDIA B200\",\"event\":\"stopped\",\"reason\":\"stopped by the user\"}}\n",
                MAY + HOUR
            )
        );
    }

    #[test]
    fn closes_a_torn_line_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("pod-a.jsonl"),
            "{\"session\":1,\"at\":1,\"us",
        )
        .unwrap();
        let mut log = UsageLog::open(dir.path(), &PodId::parse("pod-a").unwrap()).unwrap();
        log.record(&line(MAY, MAY, "bob", None, SessionEvent::Started))
            .unwrap();
        let text = fs::read_to_string(dir.path().join("pod-a.jsonl")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(serde_json::from_str::<SessionLine>(lines[1]).is_ok());
    }

    #[test]
    fn sums_gpu_hours_per_user_across_pods() {
        let dir = tempfile::tempdir().unwrap();
        let write = |pod: &str, lines: &[SessionLine], torn: &str| {
            let mut log = UsageLog::open(dir.path(), &PodId::parse(pod).unwrap()).unwrap();
            for line in lines {
                log.record(line).unwrap();
            }
            let mut file = OpenOptions::new()
                .append(true)
                .open(dir.path().join(format!("{pod}.jsonl")))
                .unwrap();
            file.write_all(torn.as_bytes()).unwrap();
        };
        let b200 = Some("NVIDIA B200");
        let rtx = Some("NVIDIA GeForce RTX 4090");
        let april_end = MAY - HOUR;
        write(
            "pod-a",
            &[
                // Two hours, one of them in April.
                line(april_end, april_end, "alice", b200, SessionEvent::Started),
                line(april_end, april_end + 2 * HOUR, "alice", b200, stopped()),
                // The pod died: the session ends at its last `running` line, 3 hours in.
                line(
                    MAY + 10 * HOUR,
                    MAY + 10 * HOUR,
                    "bob",
                    rtx,
                    SessionEvent::Started,
                ),
                line(
                    MAY + 10 * HOUR,
                    MAY + 10 * HOUR + 60_000,
                    "bob",
                    rtx,
                    SessionEvent::Ready,
                ),
                line(
                    MAY + 10 * HOUR,
                    MAY + 13 * HOUR,
                    "bob",
                    rtx,
                    SessionEvent::Running,
                ),
            ],
            "{\"session\":",
        );
        write(
            "pod-b",
            &[
                line(
                    MAY + 20 * HOUR,
                    MAY + 20 * HOUR,
                    "alice",
                    rtx,
                    SessionEvent::Started,
                ),
                line(MAY + 20 * HOUR, MAY + 22 * HOUR, "alice", rtx, stopped()),
                line(
                    MAY + 30 * HOUR,
                    MAY + 30 * HOUR,
                    "alice",
                    None,
                    SessionEvent::Started,
                ),
                line(MAY + 30 * HOUR, MAY + 31 * HOUR, "alice", None, stopped()),
            ],
            "",
        );
        fs::write(dir.path().join("notes.txt"), "not a log").unwrap();
        let summary = summarise(dir.path(), "2026-05".parse().unwrap()).unwrap();
        assert_eq!(summary.unreadable_lines, 1);
        let by_user: Vec<(&str, f64, u32)> = summary
            .users
            .iter()
            .map(|usage| (usage.user.as_str(), usage.gpu_hours, usage.sessions))
            .collect();
        assert_eq!(by_user, [("alice", 3.0, 3), ("bob", 3.0, 1)]);
        let alice = &summary.users[0].hours_by_gpu;
        assert_eq!(alice["NVIDIA B200"], 1.0);
        assert_eq!(alice["NVIDIA GeForce RTX 4090"], 2.0);
        assert_eq!(alice["cpu"], 1.0);
        let april = summarise(dir.path(), "2026-04".parse().unwrap()).unwrap();
        assert_eq!(april.users.len(), 1);
        assert_eq!(april.users[0].gpu_hours, 1.0);
        assert_eq!(
            serde_json::to_value(&april).unwrap()["month"],
            serde_json::json!("2026-04")
        );
    }

    #[test]
    fn a_volume_without_sessions_has_no_usage() {
        let dir = tempfile::tempdir().unwrap();
        let summary = summarise(&dir.path().join("missing"), "2026-05".parse().unwrap()).unwrap();
        assert!(summary.users.is_empty());
    }

    #[test]
    fn months_map_to_time() {
        let may: Month = "2026-05".parse().unwrap();
        assert_eq!(may.start(), MAY);
        assert_eq!(Month::containing(MAY), may);
        assert_eq!(Month::containing(MAY - 1).to_string(), "2026-04");
        assert_eq!(Month::containing(0).to_string(), "1970-01");
        let december: Month = "2025-12".parse().unwrap();
        assert_eq!(december.next().to_string(), "2026-01");
        assert_eq!(december.next().start(), 1_767_225_600_000);
        assert_eq!(Month::containing(951_782_400_000).to_string(), "2000-02"); // 2000-02-29
        for bad in ["2026-5", "2026-13", "26-05", "may", "1969-12", ""] {
            assert!(
                bad.parse::<Month>().unwrap_err().contains("YYYY-MM"),
                "{bad}"
            );
        }
    }

    #[test]
    fn slots_started_in_the_same_millisecond_are_two_sessions_each_counted_to_now() {
        let dir = tempfile::tempdir().unwrap();
        let rtx = Some("NVIDIA GeForce RTX 4090");
        let mut log = UsageLog::open(dir.path(), &PodId::parse("pod-a").unwrap()).unwrap();
        for user in ["alice", "bob"] {
            log.record(&line(MAY, MAY, user, rtx, SessionEvent::Started))
                .unwrap();
        }
        let now = MAY + 2 * HOUR;
        let live = ["alice", "bob"].map(|user| LiveSession {
            pod: "pod-a",
            user,
            now,
        });
        let summary = summarise_live(dir.path(), "2026-05".parse().unwrap(), &live).unwrap();
        let users: Vec<(&str, u32, bool)> = summary
            .users
            .iter()
            .map(|usage| (usage.user.as_str(), usage.sessions, usage.running))
            .collect();
        assert_eq!(users, [("alice", 1, true), ("bob", 1, true)]);
        for usage in &summary.users {
            assert!((usage.gpu_hours - 2.0).abs() < 1e-9, "{summary:?}");
        }
    }

    #[test]
    fn the_running_session_counts_up_to_now() {
        let dir = tempfile::tempdir().unwrap();
        let rtx = Some("NVIDIA GeForce RTX 4090");
        let mut log = UsageLog::open(dir.path(), &PodId::parse("pod-a").unwrap()).unwrap();
        for line in [
            // An earlier session of bob that ended.
            line(MAY, MAY, "bob", rtx, SessionEvent::Started),
            line(MAY, MAY + HOUR, "bob", rtx, stopped()),
            // The one running now: its last line is an hour in.
            line(
                MAY + 2 * HOUR,
                MAY + 2 * HOUR,
                "bob",
                rtx,
                SessionEvent::Started,
            ),
            line(
                MAY + 2 * HOUR,
                MAY + 3 * HOUR,
                "bob",
                rtx,
                SessionEvent::Running,
            ),
        ] {
            log.record(&line).unwrap();
        }
        let month = "2026-05".parse().unwrap();
        let before = summarise(dir.path(), month).unwrap();
        assert!((before.users[0].gpu_hours - 2.0).abs() < 1e-9);
        assert!(!before.users[0].running);
        let now = MAY + 4 * HOUR;
        let live = |pod, user| [LiveSession { pod, user, now }];
        let summary = summarise_live(dir.path(), month, &live("pod-a", "bob")).unwrap();
        assert!(
            (summary.users[0].gpu_hours - 3.0).abs() < 1e-9,
            "{summary:?}"
        );
        assert!(summary.users[0].running);
        // Another pod's file, or another user, is not this pod's running session.
        for (pod, user) in [("pod-b", "bob"), ("pod-a", "alice")] {
            let summary = summarise_live(dir.path(), month, &live(pod, user)).unwrap();
            assert!(
                (summary.users[0].gpu_hours - 2.0).abs() < 1e-9,
                "{pod} {user}"
            );
            assert!(!summary.users[0].running);
        }
    }
}
