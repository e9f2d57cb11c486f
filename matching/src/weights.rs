//! The Fellegi–Sunter weights: for each field and level, m (the chance the
//! level is seen when the record is the child asked about) and u (the chance
//! it is seen when the record is some other child), from
//! `data/match-weights.csv`, compiled in. A level's weight is log2(m/u):
//! positive when the level is evidence for the child, negative against.
//!
//! ARCHITECTURE.md ("Tolerant matching") says how m and u were estimated.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::compare::Field;

static SHIPPED: LazyLock<Weights> = LazyLock::new(|| {
    Weights::parse(include_str!("../../data/match-weights.csv"))
        .expect("data/match-weights.csv is checked by this crate's tests")
});

/// m and u of each level.
#[derive(Debug, Clone, Default)]
pub struct Weights {
    levels: HashMap<(Field, String), (f64, f64)>,
}

impl Weights {
    /// Reads `field,level,m,u` lines; `#` starts a comment.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut levels = HashMap::new();
        for (number, line) in (1..).zip(text.lines()) {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with("field,") {
                continue;
            }
            let columns: Vec<&str> = line.split(',').map(str::trim).collect();
            let [field, level, m, u] = columns[..] else {
                return Err(format!("line {number}: expected field,level,m,u"));
            };
            let field = Field::ALL
                .into_iter()
                .find(|f| f.as_str() == field)
                .ok_or_else(|| format!("line {number}: no field {field:?}"))?;
            if field.describe(level).is_empty() {
                return Err(format!("line {number}: {field:?} has no level {level:?}"));
            }
            let probability = |text: &str| {
                text.parse::<f64>()
                    .ok()
                    .filter(|p| *p > 0.0 && *p <= 1.0)
                    .ok_or_else(|| format!("line {number}: {text:?} is not a probability above 0"))
            };
            levels.insert(
                (field, level.to_owned()),
                (probability(m)?, probability(u)?),
            );
        }
        for field in Field::ALL {
            for (level, _) in field.levels() {
                if !levels.contains_key(&(field, (*level).to_owned())) {
                    return Err(format!("no weight for {} {level}", field.as_str()));
                }
            }
        }
        Ok(Self { levels })
    }

    /// The table shipped in `data/match-weights.csv`.
    pub fn shipped() -> &'static Self {
        &SHIPPED
    }

    /// log2(m/u) of a level, in bits.
    pub fn weight(&self, field: Field, level: &str) -> f64 {
        self.levels
            .get(&(field, level.to_owned()))
            .map_or(0.0, |(m, u)| (m / u).log2())
    }

    /// m and u of a level.
    pub fn probabilities(&self, field: Field, level: &str) -> Option<(f64, f64)> {
        self.levels.get(&(field, level.to_owned())).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_weighs_every_level_and_orders_each_field_best_first() {
        let weights = Weights::shipped();
        for field in Field::ALL {
            let levels = field.levels();
            let first = weights.weight(field, levels[0].0);
            let last = weights.weight(field, levels[levels.len() - 1].0);
            assert!(first > 0.0 && last < 0.0, "{field:?}: {first} .. {last}");
        }
        assert!(Weights::parse("surname,exact,0.9,0").is_err());
        assert!(Weights::parse("surname,closest,0.9,0.1").is_err());
    }
}
