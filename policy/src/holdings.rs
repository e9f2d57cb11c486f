//! What a contributing body holds, and so may write (regulation 11): the
//! reviewed mapping from a body to the paragraphs of Schedule 1 it keeps.
use std::fmt;
use std::str::FromStr;

/// A kind of Schedule 1 information a Schedule 4 or 5 body may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holding {
    /// Para 6: those with parental responsibility or care, and their contact details.
    Contact,
    /// Para 7: the school or other education provider a child attends.
    Education,
    /// Para 8: the primary medical services (GP) practice.
    PrimaryMedical,
    /// Para 9: a specialist or targeted service, sensitive or not.
    TargetedService,
    /// Para 10: a Common Assessment Framework assessment.
    CafAssessment,
    /// Para 11: a health visitor.
    HealthVisitor,
    /// Para 12: a school nurse.
    SchoolNurse,
    /// Para 13: a midwife.
    Midwife,
    /// Para 16: a lead professional.
    LeadProfessional,
}

const HOLDINGS: &[(Holding, &str, &str)] = &[
    (Holding::Contact, "contact", "6"),
    (Holding::Education, "education", "7"),
    (Holding::PrimaryMedical, "primary_medical", "8"),
    (Holding::TargetedService, "targeted_service", "9"),
    (Holding::CafAssessment, "caf_assessment", "10"),
    (Holding::HealthVisitor, "health_visitor", "11"),
    (Holding::SchoolNurse, "school_nurse", "12"),
    (Holding::Midwife, "midwife", "13"),
    (Holding::LeadProfessional, "lead_professional", "16"),
];

impl Holding {
    fn entry(self) -> &'static (Holding, &'static str, &'static str) {
        HOLDINGS
            .iter()
            .find(|(holding, _, _)| *holding == self)
            .expect("every holding is in the table")
    }

    /// The name the policy file uses.
    pub fn name(self) -> &'static str {
        self.entry().1
    }

    /// The Schedule 1 paragraph.
    pub fn paragraph(self) -> &'static str {
        self.entry().2
    }

    /// Every name, for messages.
    pub fn names() -> String {
        HOLDINGS
            .iter()
            .map(|(_, name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl FromStr for Holding {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        HOLDINGS
            .iter()
            .find(|(_, name, _)| *name == text)
            .map(|(holding, _, _)| *holding)
            .ok_or_else(|| {
                format!(
                    "{text:?} is not information a body contributes; use one of {}",
                    Self::names()
                )
            })
    }
}

impl fmt::Display for Holding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (Schedule 1 para {})", self.name(), self.paragraph())
    }
}
