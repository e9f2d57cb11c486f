//! Today's date, injectable so that tests can move time (age rules, and later
//! archiving and destruction).
use chrono::NaiveDate;
use std::fmt::Debug;

pub trait Clock: Send + Sync + Debug + 'static {
    fn today(&self) -> NaiveDate;
}

/// The system clock, in UTC.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn today(&self) -> NaiveDate {
        chrono::Utc::now().date_naive()
    }
}

/// A clock stopped at one date.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub NaiveDate);

impl Clock for FixedClock {
    fn today(&self) -> NaiveDate {
        self.0
    }
}
