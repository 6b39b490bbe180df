//! rclone's log lines, `2026/05/01 10:00:00 NOTICE: <message>`: what a line says without its
//! time and level.

/// rclone's log levels as they start a message.
const LEVELS: [&str; 5] = [
    " NOTICE: ",
    " ERROR : ",
    " INFO  : ",
    " DEBUG : ",
    " CRITICAL: ",
];

/// The message of `line`; the whole line when it has no level.
pub fn message(line: &str) -> &str {
    LEVELS
        .iter()
        .find_map(|level| line.split_once(level).map(|(_, message)| message))
        .unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_what_follows_the_level() {
        assert_eq!(
            message("2026/12/02 00:30:17 CRITICAL: Failed to create file system for \"dav:ComfyUI\": connection refused"),
            "Failed to create file system for \"dav:ComfyUI\": connection refused"
        );
        assert_eq!(message("no level"), "no level");
    }
}
