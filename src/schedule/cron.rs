//! A CronJob schedule, checked offline the way Kubernetes reads it (five fields, ranges, steps,
//! names, the `@daily` family), so a typo is refused before anything is applied, and the next
//! runs can be shown.

use jiff::civil::DateTime;
use jiff::{Timestamp, ToSpan as _};

/// Why a schedule is not one a CronJob accepts. The message is shown to users verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule `{schedule}`: {reason}")]
pub struct CronError {
    pub schedule: String,
    pub reason: String,
}

/// A parsed schedule: the allowed values of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    /// Both day fields restricted: a day matches either (cron's rule).
    either_day: bool,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: Field = Field {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
// 7 is Sunday too, as in Kubernetes (robfig/cron).
const WEEKDAY: Field = Field {
    name: "day of week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

impl Field {
    fn value(&self, text: &str) -> Result<u32, String> {
        let lower = text.to_ascii_lowercase();
        if let Some(index) = self.names.iter().position(|n| *n == lower) {
            return Ok(index as u32 + if self.names.len() == 12 { 1 } else { 0 });
        }
        let value: u32 = text
            .parse()
            .map_err(|_| format!("`{text}` is not a {} value", self.name))?;
        if value < self.min || value > self.max {
            return Err(format!(
                "{} {value} is outside {}-{}",
                self.name, self.min, self.max
            ));
        }
        Ok(value)
    }

    /// One field: `*`, `*/n`, `a`, `a-b`, `a-b/n`, `a/n`, comma-separated.
    fn parse(&self, text: &str) -> Result<Vec<bool>, String> {
        let mut allowed = vec![false; self.max as usize + 1];
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((range, step)) => {
                    let step: u32 = step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        format!(
                            "step `/{step}` of the {} must be a number above 0",
                            self.name
                        )
                    })?;
                    (range, step)
                }
                None => (part, 1),
            };
            let (low, high) = match range {
                "*" | "?" => (self.min, self.max),
                _ => match range.split_once('-') {
                    Some((a, b)) => (self.value(a)?, self.value(b)?),
                    // `a/n` runs from a to the end, as robfig/cron reads it.
                    None if step > 1 => (self.value(range)?, self.max),
                    None => {
                        let v = self.value(range)?;
                        (v, v)
                    }
                },
            };
            if low > high {
                return Err(format!(
                    "range `{range}` of the {} runs backwards",
                    self.name
                ));
            }
            for v in (low..=high).step_by(step as usize) {
                allowed[v as usize] = true;
            }
        }
        Ok(allowed)
    }
}

impl Cron {
    /// Parses a CronJob `spec.schedule`.
    pub fn parse(schedule: &str) -> Result<Self, CronError> {
        let error = |reason: String| CronError {
            schedule: schedule.to_string(),
            reason,
        };
        let trimmed = schedule.trim();
        if trimmed.starts_with("TZ=") || trimmed.starts_with("CRON_TZ=") {
            return Err(error(
                "a time zone in the schedule is refused by Kubernetes 1.27+; schedules are in \
                 the controller's time zone (UTC in most clusters)"
                    .into(),
            ));
        }
        let expanded = match trimmed {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(error(format!(
                    "`{other}` is not a schedule macro: use @yearly, @monthly, @weekly, @daily \
                     or @hourly"
                )));
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(error(format!(
                "needs 5 fields (minute hour day-of-month month day-of-week), found {}; e.g. \
                 `0 3 * * 1` for Mondays at 03:00",
                fields.len()
            )));
        };
        let mut weekdays = WEEKDAY.parse(weekday).map_err(error)?;
        if weekdays[7] {
            weekdays[0] = true;
        }
        weekdays.truncate(7);
        Ok(Self {
            minutes: MINUTE.parse(minute).map_err(error)?,
            hours: HOUR.parse(hour).map_err(error)?,
            days: DAY.parse(day).map_err(error)?,
            months: MONTH.parse(month).map_err(error)?,
            weekdays,
            either_day: !matches!(day, "*" | "?") && !matches!(weekday, "*" | "?"),
        })
    }

    fn matches(&self, at: DateTime) -> bool {
        let day = self.days[at.day() as usize];
        let weekday = self.weekdays[at.weekday().to_sunday_zero_offset() as usize];
        let day_ok = if self.either_day {
            day || weekday
        } else {
            day && weekday
        };
        self.minutes[at.minute() as usize]
            && self.hours[at.hour() as usize]
            && self.months[at.month() as usize]
            && day_ok
    }

    /// The next `count` runs strictly after `after`, in UTC; fewer when the schedule never
    /// fires within five years (e.g. `0 0 30 2 *`).
    pub fn next_runs(&self, after: Timestamp, count: usize) -> Vec<DateTime> {
        let start = after.to_zoned(jiff::tz::TimeZone::UTC).datetime();
        let mut at = start
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .unwrap_or(start);
        let mut runs = Vec::new();
        // Minute by minute: at most five years of minutes, a few million cheap checks.
        for _ in 0..(5 * 366 * 24 * 60) {
            at = match at.checked_add(1.minute()) {
                Ok(next) => next,
                Err(_) => break,
            };
            if self.matches(at) {
                runs.push(at);
                if runs.len() == count {
                    break;
                }
            }
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(schedule: &str, after: &str) -> Vec<String> {
        let cron = Cron::parse(schedule).expect("valid");
        let after: Timestamp = after.parse().expect("timestamp");
        cron.next_runs(after, 3)
            .into_iter()
            .map(|d| d.strftime("%Y-%m-%d %H:%M %a").to_string())
            .collect()
    }

    #[test]
    fn mondays_at_three_and_macros_and_steps() {
        assert_eq!(
            runs("0 3 * * 1", "2026-11-24T04:00:00Z"),
            [
                "2026-11-30 03:00 Mon",
                "2026-12-07 03:00 Mon",
                "2026-12-14 03:00 Mon"
            ]
        );
        assert_eq!(
            runs("*/20 9-10 * * mon-fri", "2026-11-28T00:00:00Z"),
            [
                "2026-11-30 09:00 Mon",
                "2026-11-30 09:20 Mon",
                "2026-11-30 09:40 Mon"
            ]
        );
        assert_eq!(
            runs("@weekly", "2026-11-24T00:00:00Z")[0],
            "2026-11-29 00:00 Sun"
        );
        assert_eq!(
            runs("0 0 * * 7", "2026-11-24T00:00:00Z")[0],
            "2026-11-29 00:00 Sun"
        );
        // Both day fields restricted: either matches (the 1st, or any Friday).
        assert_eq!(
            runs("0 12 1 * fri", "2026-11-24T00:00:00Z"),
            [
                "2026-11-27 12:00 Fri",
                "2026-12-01 12:00 Tue",
                "2026-12-04 12:00 Fri"
            ]
        );
        assert!(runs("0 0 30 2 *", "2026-11-24T00:00:00Z").is_empty());
    }

    #[test]
    fn what_kubernetes_refuses_is_refused_in_words() {
        for (schedule, words) in [
            ("every monday", "needs 5 fields"),
            ("0 3 * *", "found 4"),
            ("60 3 * * 1", "minute 60 is outside 0-59"),
            ("0 24 * * 1", "hour 24 is outside 0-23"),
            ("0 3 0 * *", "day of month 0 is outside 1-31"),
            ("0 3 * 13 *", "month 13 is outside 1-12"),
            ("0 3 * * 8", "day of week 8 is outside 0-7"),
            ("0 3 * * funday", "`funday` is not a day of week value"),
            ("*/0 * * * *", "must be a number above 0"),
            ("0 5-3 * * *", "runs backwards"),
            ("@fortnightly", "not a schedule macro"),
            ("TZ=Europe/Berlin 0 3 * * 1", "time zone"),
        ] {
            let err = Cron::parse(schedule).expect_err(schedule).to_string();
            assert!(err.contains(words), "{schedule}: {err}");
        }
    }
}
