//! A container's status and its legal moves, with no I/O, so every transition
//! is unit-tested. The caller turns the returned decisions into events.

use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
    Deleted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: u32,
    pub at: SystemTime,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot {action} a {from:?} container")]
pub struct Illegal {
    pub action: &'static str,
    pub from: Status,
}

#[derive(Debug)]
pub struct Lifecycle {
    status: Status,
    exit: Option<Exit>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle { status: Status::Created, exit: None }
    }
}

impl Lifecycle {
    pub fn status(&self) -> Status {
        self.status
    }

    pub fn exit(&self) -> Option<Exit> {
        self.exit
    }

    /// Whether a Start may begin: only a Created process starts.
    pub fn may_start(&self) -> Result<(), Illegal> {
        match self.status {
            Status::Created => Ok(()),
            from => Err(Illegal { action: "start", from }),
        }
    }

    /// Created -> Running, once the program runs: until then the process is
    /// Created to every other verb (an exec cannot be killed, as the runc
    /// shim's has no pid before its Start returns), and a Start that fails
    /// leaves it so.
    pub fn start(&mut self) -> Result<(), Illegal> {
        self.may_start()?;
        self.status = Status::Running;
        Ok(())
    }

    /// Running -> Paused (the freezer holds every process of the container).
    pub fn pause(&mut self) -> Result<(), Illegal> {
        match self.status {
            Status::Running => {
                self.status = Status::Paused;
                Ok(())
            }
            from => Err(Illegal { action: "pause", from }),
        }
    }

    /// Paused -> Running.
    pub fn resume(&mut self) -> Result<(), Illegal> {
        match self.status {
            Status::Paused => {
                self.status = Status::Running;
                Ok(())
            }
            from => Err(Illegal { action: "resume", from }),
        }
    }

    /// The init died. Returns true the first time: exactly one TaskExit.
    pub fn exited(&mut self, exit: Exit) -> bool {
        match self.status {
            Status::Created | Status::Running | Status::Paused => {
                self.status = Status::Stopped;
                self.exit = Some(exit);
                true
            }
            Status::Stopped | Status::Deleted => false,
        }
    }

    /// Stopped -> Deleted. A Created one must be killed and have exited first.
    pub fn delete(&mut self) -> Result<Exit, Illegal> {
        match (self.status, self.exit) {
            (Status::Stopped, Some(exit)) => {
                self.status = Status::Deleted;
                Ok(exit)
            }
            (from, _) => Err(Illegal { action: "delete", from }),
        }
    }

    /// Whether a signal may still be sent.
    pub fn signalable(&self) -> bool {
        matches!(self.status, Status::Created | Status::Running | Status::Paused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: u32) -> Exit {
        Exit { code, at: SystemTime::UNIX_EPOCH }
    }

    #[test]
    fn created_running_stopped_deleted() {
        let mut l = Lifecycle::default();
        assert_eq!(l.status(), Status::Created);
        assert!(l.signalable());
        l.start().expect("start");
        assert_eq!(l.status(), Status::Running);
        assert!(l.exited(exit(7)));
        assert_eq!(l.status(), Status::Stopped);
        assert!(!l.signalable());
        assert_eq!(l.delete().expect("delete").code, 7);
        assert_eq!(l.status(), Status::Deleted);
    }

    #[test]
    fn a_start_that_never_ran_leaves_it_created_and_killable() {
        let mut l = Lifecycle::default();
        l.may_start().expect("a Created process may start");
        assert_eq!(l.status(), Status::Created);
        assert!(l.signalable());
        assert!(l.exited(exit(0)));
        assert_eq!(l.delete().expect("delete").code, 0);
    }

    #[test]
    fn exit_is_reported_once() {
        let mut l = Lifecycle::default();
        l.start().expect("start");
        assert!(l.exited(exit(0)));
        assert!(!l.exited(exit(1)));
        assert_eq!(l.exit().map(|e| e.code), Some(0));
    }

    #[test]
    fn a_created_container_that_dies_is_stopped() {
        let mut l = Lifecycle::default();
        assert!(l.exited(exit(137)));
        assert_eq!(l.start(), Err(Illegal { action: "start", from: Status::Stopped }));
        assert_eq!(l.may_start(), Err(Illegal { action: "start", from: Status::Stopped }));
    }

    #[test]
    fn illegal_moves_are_refused() {
        let mut l = Lifecycle::default();
        assert_eq!(l.delete(), Err(Illegal { action: "delete", from: Status::Created }));
        l.start().expect("start");
        assert_eq!(l.start(), Err(Illegal { action: "start", from: Status::Running }));
        assert_eq!(l.delete().unwrap_err().to_string(), "cannot delete a Running container");
        l.exited(exit(0));
        l.delete().expect("delete");
        assert!(l.delete().is_err());
        assert!(!l.exited(exit(0)));
    }

    #[test]
    fn pause_and_resume_only_from_their_states() {
        let mut l = Lifecycle::default();
        assert_eq!(l.pause(), Err(Illegal { action: "pause", from: Status::Created }));
        l.start().expect("start");
        l.pause().expect("pause");
        assert_eq!(l.status(), Status::Paused);
        assert_eq!(l.pause(), Err(Illegal { action: "pause", from: Status::Paused }));
        assert_eq!(l.start(), Err(Illegal { action: "start", from: Status::Paused }));
        l.resume().expect("resume");
        assert_eq!(l.resume(), Err(Illegal { action: "resume", from: Status::Running }));
        l.pause().expect("pause again");
        // A paused init can still die (SIGKILL thaws it): one exit.
        assert!(l.exited(Exit { code: 137, at: SystemTime::UNIX_EPOCH }));
        assert_eq!(l.status(), Status::Stopped);
    }
}
