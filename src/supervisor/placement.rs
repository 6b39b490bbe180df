//! Who goes into which ComfyUI slot: a start takes a free slot (or the one named), a user
//! already in a slot gets that slot back and never a second, and taking someone else's slot
//! or stopping their session is refused unless forced, so nobody's work is stopped by
//! another person's click without their name and queue shown first.

use super::slots::SlotIndex;
use crate::user::UserName;

/// A slot as the placement sees it: who holds it, when someone does (a ComfyUI starting,
/// running, restarting or stopping for them; a stopped or failed slot is free).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    pub slot: SlotIndex,
    pub holder: Option<UserName>,
}

/// What a start does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// The user's own slot, or a free one.
    Take(SlotIndex),
    /// Someone else's slot, forced: their session is stopped first.
    Replace { slot: SlotIndex, holder: UserName },
}

/// Why a start or a stop is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// The slot is someone else's.
    Busy {
        slot: SlotIndex,
        holder: UserName,
    },
    /// Every slot is someone's; they are listed.
    Full(Vec<Seat>),
    NoSuchSlot {
        slot: SlotIndex,
        slots: usize,
    },
    /// A stop on a pod of several slots that names neither a slot nor a user.
    Ambiguous,
}

/// Where `user` starts: `wanted` names a slot, `force` takes it from whoever holds it.
pub fn start(
    seats: &[Seat],
    user: &UserName,
    wanted: Option<SlotIndex>,
    force: bool,
) -> Result<Placement, Conflict> {
    if let Some(own) = seats.iter().find(|seat| seat.holder.as_ref() == Some(user)) {
        return Ok(Placement::Take(own.slot));
    }
    let seat = match wanted {
        Some(slot) => seat_at(seats, slot)?,
        None => match seats.iter().find(|seat| seat.holder.is_none()) {
            Some(free) => free,
            // With one slot there is only one to force.
            None if force && seats.len() == 1 => &seats[0],
            None => return Err(Conflict::Full(seats.to_vec())),
        },
    };
    match &seat.holder {
        None => Ok(Placement::Take(seat.slot)),
        Some(holder) if force => Ok(Placement::Replace {
            slot: seat.slot,
            holder: holder.clone(),
        }),
        Some(holder) => Err(Conflict::Busy {
            slot: seat.slot,
            holder: holder.clone(),
        }),
    }
}

/// Which slot a stop stops: the one named, else the one `asker` holds, else the only one.
/// Stopping a session `asker` does not hold is refused unless forced; a stop that does not
/// say who asks (the API before slots) is taken as the holder's own.
pub fn stop(
    seats: &[Seat],
    asker: Option<&UserName>,
    wanted: Option<SlotIndex>,
    force: bool,
) -> Result<SlotIndex, Conflict> {
    let seat = match (wanted, asker) {
        (Some(slot), _) => seat_at(seats, slot)?,
        (None, Some(asker)) => match seats.iter().find(|s| s.holder.as_ref() == Some(asker)) {
            Some(own) => own,
            None if seats.len() == 1 => &seats[0],
            None => return Err(Conflict::Ambiguous),
        },
        (None, None) if seats.len() == 1 => &seats[0],
        (None, None) => return Err(Conflict::Ambiguous),
    };
    match (&seat.holder, asker) {
        (Some(holder), Some(asker)) if holder != asker && !force => Err(Conflict::Busy {
            slot: seat.slot,
            holder: holder.clone(),
        }),
        _ => Ok(seat.slot),
    }
}

fn seat_at(seats: &[Seat], slot: SlotIndex) -> Result<&Seat, Conflict> {
    seats
        .iter()
        .find(|seat| seat.slot == slot)
        .ok_or(Conflict::NoSuchSlot {
            slot,
            slots: seats.len(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    fn seats(holders: &[Option<&str>]) -> Vec<Seat> {
        (0..)
            .zip(holders)
            .map(|(index, holder)| Seat {
                slot: SlotIndex(index),
                holder: holder.map(user),
            })
            .collect()
    }

    #[test]
    fn a_start_takes_the_first_free_slot_or_the_users_own() {
        let pod = seats(&[Some("alice"), None, None]);
        assert_eq!(
            start(&pod, &user("bob"), None, false),
            Ok(Placement::Take(SlotIndex(1)))
        );
        assert_eq!(
            start(&pod, &user("alice"), Some(SlotIndex(2)), false),
            Ok(Placement::Take(SlotIndex(0))),
            "never two slots for one user"
        );
        assert_eq!(
            start(&pod, &user("bob"), Some(SlotIndex(2)), false),
            Ok(Placement::Take(SlotIndex(2)))
        );
    }

    #[test]
    fn someone_elses_slot_is_refused_unless_forced() {
        let pod = seats(&[Some("alice"), None]);
        assert_eq!(
            start(&pod, &user("bob"), Some(SlotIndex(0)), false),
            Err(Conflict::Busy {
                slot: SlotIndex(0),
                holder: user("alice")
            })
        );
        assert_eq!(
            start(&pod, &user("bob"), Some(SlotIndex(0)), true),
            Ok(Placement::Replace {
                slot: SlotIndex(0),
                holder: user("alice")
            })
        );
        assert_eq!(
            start(&pod, &user("bob"), Some(SlotIndex(5)), true),
            Err(Conflict::NoSuchSlot {
                slot: SlotIndex(5),
                slots: 2
            })
        );
    }

    #[test]
    fn a_full_pod_names_everyone_and_forces_only_its_one_slot() {
        let one = seats(&[Some("alice")]);
        assert_eq!(
            start(&one, &user("bob"), None, false),
            Err(Conflict::Full(one.clone()))
        );
        assert_eq!(
            start(&one, &user("bob"), None, true),
            Ok(Placement::Replace {
                slot: SlotIndex(0),
                holder: user("alice")
            })
        );
        let two = seats(&[Some("alice"), Some("carol")]);
        assert_eq!(
            start(&two, &user("bob"), None, true),
            Err(Conflict::Full(two.clone())),
            "which of two to take is for the person to say"
        );
    }

    #[test]
    fn a_stop_of_someone_elses_session_is_refused_unless_forced() {
        let pod = seats(&[Some("alice"), Some("bob")]);
        assert_eq!(
            stop(&pod, Some(&user("bob")), None, false),
            Ok(SlotIndex(1))
        );
        assert_eq!(
            stop(&pod, Some(&user("bob")), Some(SlotIndex(0)), false),
            Err(Conflict::Busy {
                slot: SlotIndex(0),
                holder: user("alice")
            })
        );
        assert_eq!(
            stop(&pod, Some(&user("bob")), Some(SlotIndex(0)), true),
            Ok(SlotIndex(0))
        );
        assert_eq!(stop(&pod, None, None, false), Err(Conflict::Ambiguous));
        assert_eq!(
            stop(&seats(&[Some("alice")]), None, None, false),
            Ok(SlotIndex(0))
        );
    }
}
