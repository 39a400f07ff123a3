//! Asymmetric logical unit access (SPC-4 §5.16), implicit only (TPGS 01b
//! in standard INQUIRY): one target port group per iSCSI portal group, its
//! id being the portal group tag, with one target port whose relative
//! target port identifier is that same tag. The state of each group comes
//! from the configuration ([`super::LuInfo::port_groups`], set with
//! `shardtgtadm alua set`); REPORT TARGET PORT GROUPS reports it and
//! [`refusal`] turns it into NOT READY for the commands a state forbids.
//! SET TARGET PORT GROUPS (explicit ALUA) is not implemented.
//!
//! It never changes a state itself and keeps no state of its own.

use super::cdb::ScsiOpcode;
use super::sense::{Asc, Sense, SenseKey};

/// An asymmetric access state (SPC-4 §6.37, the ASYMMETRIC ACCESS STATE
/// field of a target port group descriptor).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash, PartialOrd, Ord)]
pub struct AluaState(pub u8);

impl AluaState {
    /// Active/optimized: every command, best performance.
    pub const ACTIVE_OPTIMIZED: AluaState = AluaState(0x0);
    /// Active/non-optimized: every command, lower performance.
    pub const ACTIVE_NON_OPTIMIZED: AluaState = AluaState(0x1);
    /// Standby: only management and reporting commands (§5.16.2.4.4).
    pub const STANDBY: AluaState = AluaState(0x2);
    /// Unavailable: only reporting commands (§5.16.2.4.5).
    pub const UNAVAILABLE: AluaState = AluaState(0x3);
    /// Transitioning between states (§5.16.2.4.6).
    pub const TRANSITIONING: AluaState = AluaState(0xf);

    /// Every state we support, with its configuration name.
    pub const NAMES: [(AluaState, &'static str); 5] = [
        (AluaState::ACTIVE_OPTIMIZED, "active-optimized"),
        (AluaState::ACTIVE_NON_OPTIMIZED, "active-non-optimized"),
        (AluaState::STANDBY, "standby"),
        (AluaState::UNAVAILABLE, "unavailable"),
        (AluaState::TRANSITIONING, "transitioning"),
    ];

    /// The state a configuration name means (`active-optimized`,
    /// `active-non-optimized`, `standby`, `unavailable`, `transitioning`;
    /// case-insensitive, `_` or `/` for `-` accepted).
    pub fn from_name(s: &str) -> Option<AluaState> {
        let norm: String =
            s.trim().chars().map(|c| if c == '_' || c == '/' { '-' } else { c.to_ascii_lowercase() }).collect();
        Self::NAMES.iter().find(|(_, n)| *n == norm).map(|(st, _)| *st)
    }

    /// The configuration name.
    pub fn name(self) -> &'static str {
        Self::NAMES.iter().find(|(st, _)| *st == self).map_or("unknown", |(_, n)| n)
    }
}

/// The supported states, as the second byte of a target port group
/// descriptor: T_SUP, U_SUP, S_SUP, AN_SUP, AO_SUP (SPC-4 §6.37).
pub const SUPPORTED: u8 = 0x80 | 0x08 | 0x04 | 0x02 | 0x01;

/// Commands every state serves: INQUIRY, REPORT LUNS, REQUEST SENSE and
/// REPORT TARGET PORT GROUPS (MAINTENANCE IN / 0Ah).
fn always(op: u8, sa: u8) -> bool {
    matches!(ScsiOpcode(op), ScsiOpcode::INQUIRY | ScsiOpcode::REPORT_LUNS | ScsiOpcode::REQUEST_SENSE)
        || (op == 0xa3 && sa == 0x0a)
}

/// What standby adds (SPC-4 §5.16.2.4.4): LOG SELECT/SENSE, MODE
/// SELECT/SENSE (6/10), RECEIVE DIAGNOSTIC RESULTS, SEND DIAGNOSTIC,
/// PERSISTENT RESERVE IN/OUT, READ/WRITE BUFFER, and the other MAINTENANCE
/// IN / OUT reports.
fn standby_allows(op: u8) -> bool {
    matches!(op, 0x4c | 0x4d | 0x15 | 0x55 | 0x1a | 0x5a | 0x1c | 0x1d | 0x5e | 0x5f | 0x3b | 0x3c | 0xa3 | 0xa4)
}

/// NOT READY for a command the nexus's target port group `state` does not
/// serve (SPC-4 §5.16.2.4): standby → LOGICAL UNIT NOT ACCESSIBLE, TARGET
/// PORT IN STANDBY STATE (04h/0Bh); unavailable → ... UNAVAILABLE STATE
/// (04h/0Ch); transitioning → ... ASYMMETRIC ACCESS STATE TRANSITION
/// (04h/0Ah). `None`: the command may run. `sa` is the service action
/// byte's low five bits (only MAINTENANCE IN looks at it).
pub fn refusal(state: AluaState, op: u8, sa: u8) -> Option<Sense> {
    let asc = match state {
        AluaState::ACTIVE_OPTIMIZED | AluaState::ACTIVE_NON_OPTIMIZED => return None,
        _ if always(op, sa) => return None,
        AluaState::STANDBY if standby_allows(op) => return None,
        AluaState::STANDBY => Asc::LUN_NOT_ACCESSIBLE_STANDBY,
        AluaState::UNAVAILABLE => Asc::LUN_NOT_ACCESSIBLE_UNAVAILABLE,
        _ => Asc::LUN_NOT_ACCESSIBLE_ALUA_TRANSITION,
    };
    Some(Sense::new(SenseKey::NOT_READY, asc))
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ10: u8 = 0x28;
    const TUR: u8 = 0x00;

    #[test]
    fn names_round_trip() {
        for (st, n) in AluaState::NAMES {
            assert_eq!(AluaState::from_name(n), Some(st));
            assert_eq!(st.name(), n);
        }
        assert_eq!(AluaState::from_name("Active/Optimized"), Some(AluaState::ACTIVE_OPTIMIZED));
        assert_eq!(AluaState::from_name("offline"), None);
    }

    #[test]
    fn each_state_refuses_what_spc4_says() {
        let asc = |st, op, sa| refusal(st, op, sa).map(|s| (s.key, s.asc));
        let nr = |a| Some((SenseKey::NOT_READY, a));
        for st in [AluaState::ACTIVE_OPTIMIZED, AluaState::ACTIVE_NON_OPTIMIZED] {
            for op in [READ10, 0x2a, TUR, 0x35, 0x89] {
                assert_eq!(asc(st, op, 0), None);
            }
        }
        // Standby: reads, writes, TEST UNIT READY refused; management allowed.
        for op in [READ10, 0x2a, TUR, 0x35, 0x89, 0x42] {
            assert_eq!(asc(AluaState::STANDBY, op, 0), nr(Asc::LUN_NOT_ACCESSIBLE_STANDBY), "op {op:#x}");
        }
        for op in [0x12, 0xa0, 0x03, 0x1a, 0x5a, 0x15, 0x4d, 0x5e, 0x5f, 0x1c] {
            assert_eq!(asc(AluaState::STANDBY, op, 0), None, "op {op:#x}");
        }
        assert_eq!(asc(AluaState::STANDBY, 0xa3, 0x0a), None);
        // Unavailable: only INQUIRY, REPORT LUNS, REQUEST SENSE, RTPG.
        for op in [READ10, TUR, 0x1a, 0x5e, 0x5f] {
            assert_eq!(asc(AluaState::UNAVAILABLE, op, 0), nr(Asc::LUN_NOT_ACCESSIBLE_UNAVAILABLE), "op {op:#x}");
        }
        assert_eq!(asc(AluaState::UNAVAILABLE, 0xa3, 0x0c), nr(Asc::LUN_NOT_ACCESSIBLE_UNAVAILABLE));
        for (op, sa) in [(0x12, 0), (0xa0, 0), (0x03, 0), (0xa3, 0x0a)] {
            assert_eq!(asc(AluaState::UNAVAILABLE, op, sa), None);
            assert_eq!(asc(AluaState::TRANSITIONING, op, sa), None);
        }
        for op in [READ10, TUR, 0x1a, 0x5f] {
            assert_eq!(asc(AluaState::TRANSITIONING, op, 0), nr(Asc::LUN_NOT_ACCESSIBLE_ALUA_TRANSITION));
        }
    }
}
