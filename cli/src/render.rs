//! Printing records and search results for people to read.
use contactpoint_proto::v1 as pb;
use std::fmt::Write;

fn date(value: &Option<pb::Date>) -> String {
    value.as_ref().map_or("-".into(), |d| {
        format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
    })
}

pub fn name(value: &Option<pb::PersonName>) -> String {
    value.as_ref().map_or(String::new(), |n| {
        format!("{} {}", n.given_names, n.family_name)
    })
}

fn enum_name(name: Option<&str>) -> String {
    name.unwrap_or("?").to_lowercase().replace('_', " ")
}

fn provider(name: &str, contact: &Option<pb::ContactDetails>) -> String {
    match contact.as_ref().filter(|c| !c.telephone.is_empty()) {
        Some(contact) => format!("{name} ({})", contact.telephone),
        None => name.to_owned(),
    }
}

fn span(from: &Option<pb::Date>, to: &Option<pb::Date>) -> String {
    match to {
        Some(_) => format!("{} to {}", date(from), date(to)),
        None => format!("since {}", date(from)),
    }
}

pub fn matches(found: &[pb::SearchMatch]) -> String {
    if found.is_empty() {
        return "  no match\n".into();
    }
    let mut out = String::new();
    for m in found {
        let authority = m
            .responsible_authority
            .as_ref()
            .map_or("", |a| a.name.as_str());
        let _ = writeln!(
            out,
            "  [{:>5.1}] {}  {:<28} born {}  {:<9} {}\n          {}",
            m.match_weight,
            m.id,
            name(&m.name),
            date(&m.date_of_birth),
            m.postcode,
            authority,
            agreements(&m.agreements),
        );
    }
    out
}

pub fn record(r: &pb::ChildRecord) -> String {
    let mut out = String::new();
    let line = |out: &mut String, para: &str, text: String| {
        let _ = writeln!(out, "  {para:<8} {text}");
    };
    line(
        &mut out,
        "para 5",
        format!("{}  (version {})", r.id, r.version),
    );
    line(&mut out, "para 1", name(&r.name));
    for former in &r.former_names {
        line(&mut out, "", format!("formerly {}", name(&former.name)));
    }
    let whereabouts = match r.whereabouts.as_ref().and_then(|w| w.state.as_ref()) {
        Some(pb::whereabouts::State::CurrentAddress(a)) => {
            format!("{}, {} {}", a.lines.join(", "), a.town, a.postcode)
        }
        Some(pb::whereabouts::State::LastKnownAddress(a)) => format!(
            "last known: {}, {} {}",
            a.lines.join(", "),
            a.town,
            a.postcode
        ),
        Some(pb::whereabouts::State::NoKnownAddress(_)) => "no known address".into(),
        Some(pb::whereabouts::State::LeftEngland(l)) => format!(
            "left England ({}), stated by {}",
            enum_name(
                pb::left_england::ReturnIntention::try_from(l.intention)
                    .ok()
                    .map(|i| i.as_str_name())
            ),
            l.stated_by_body
        ),
        None => "-".into(),
    };
    line(&mut out, "para 2", whereabouts);
    let gender = enum_name(pb::Gender::try_from(r.gender).ok().map(|g| g.as_str_name()));
    line(
        &mut out,
        "para 3",
        gender.trim_start_matches("gender ").to_owned(),
    );
    line(
        &mut out,
        "para 4",
        format!("born {}", date(&r.date_of_birth)),
    );
    for c in &r.contacts {
        let relationship = enum_name(
            pb::contact::Relationship::try_from(c.relationship)
                .ok()
                .map(|x| x.as_str_name()),
        );
        line(
            &mut out,
            "para 6",
            format!(
                "{} ({})",
                name(&c.name),
                relationship.trim_start_matches("relationship ")
            ),
        );
    }
    for e in &r.education {
        line(
            &mut out,
            "para 7",
            format!(
                "{}, {}",
                provider(&e.provider_name, &e.provider_contact),
                span(&e.started_on, &e.ended_on)
            ),
        );
    }
    for s in &r.services {
        let kind = enum_name(
            pb::ServiceKind::try_from(s.kind)
                .ok()
                .map(|k| k.as_str_name()),
        );
        let para = match pb::ServiceKind::try_from(s.kind) {
            Ok(pb::ServiceKind::PrimaryMedical) => "para 8",
            Ok(pb::ServiceKind::HealthVisitor) => "para 11",
            Ok(pb::ServiceKind::SchoolNurse) => "para 12",
            Ok(pb::ServiceKind::Midwife) => "para 13",
            _ => "para 9",
        };
        let kind = kind.trim_start_matches("service kind ");
        let mut text = if s.sensitive && s.provider_name.is_empty() {
            format!("{kind}: a sensitive service is being or has been provided")
        } else {
            format!(
                "{kind}: {}, {}",
                provider(&s.provider_name, &s.provider_contact),
                span(&s.started_on, &s.ended_on)
            )
        };
        if s.sensitive && !s.provider_name.is_empty() {
            text.push_str(", a sensitive service");
        }
        if s.archive_after_years > 0 {
            let years = if s.archive_after_years == 1 {
                "year"
            } else {
                "years"
            };
            let _ = write!(
                text,
                ", archived {} {years} after it ends",
                s.archive_after_years
            );
        }
        line(&mut out, para, text);
    }
    for a in &r.caf_assessments {
        line(
            &mut out,
            "para 10",
            format!(
                "CAF by {} for {}, {}, actions completed {}",
                provider(&a.assessor_name, &a.assessor_contact),
                a.assessing_body,
                date(&a.assessed_on),
                date(&a.actions_completed_on)
            ),
        );
    }
    for l in &r.lead_professionals {
        line(
            &mut out,
            "para 16",
            format!(
                "lead professional {}, {}",
                provider(&l.name, &l.contact),
                span(&l.started_on, &l.ended_on)
            ),
        );
    }
    if r.date_of_death.is_some() {
        line(
            &mut out,
            "para 17",
            format!("died {}", date(&r.date_of_death)),
        );
    }
    for id in &r.body_identifiers {
        line(
            &mut out,
            "para 18",
            format!("{} {}: {}", id.body, id.scheme, id.value),
        );
    }
    if let Some(a) = &r.responsible_authority {
        line(&mut out, "para 19", format!("{} ({})", a.name, a.code));
    }
    for m in &r.metadata {
        line(
            &mut out,
            "para 20",
            format!("on para {}: {} = {}", m.paragraph, m.key, m.value),
        );
    }
    if r.shielded {
        line(&mut out, "", "shielded by the responsible authority".into());
    }
    for withheld in &r.withheld {
        line(&mut out, "withheld", withheld.clone());
    }
    out
}

pub fn transfer(t: &pb::Transfer) -> String {
    let state = enum_name(
        pb::TransferState::try_from(t.state)
            .ok()
            .map(|s| s.as_str_name()),
    );
    let place = |a: &Option<pb::ResponsibleAuthority>| {
        a.as_ref()
            .map_or(String::new(), |a| format!("{} ({})", a.name, a.code))
    };
    let mut out = format!(
        "  {}  {}  {} -> {}  {}  asked by {} at {}\n",
        t.transfer_id,
        t.record_id,
        place(&t.from),
        place(&t.to),
        state.trim_start_matches("transfer state "),
        t.requested_by,
        t.created_at
    );
    if !t.merge_into.is_empty() {
        let outcome = if t.merge_outcome.is_empty() {
            "once it arrives"
        } else {
            &t.merge_outcome
        };
        out.push_str(&format!("      merge into {}: {outcome}\n", t.merge_into));
    }
    if t.consented_by.is_empty() {
        if t.state == pb::TransferState::AwaitingConsent as i32 {
            out.push_str("      awaiting the consent of the sending authority's management team\n");
        }
    } else {
        out.push_str(&format!(
            "      consented to by {} at {}\n",
            t.consented_by, t.consented_at
        ));
    }
    if !t.waiting_reason.is_empty() {
        out.push_str(&format!("      waiting: {}\n", t.waiting_reason));
    }
    out
}

/// How a match's fields agreed: "surname sounds alike, date of birth day
/// and month swapped".
pub fn agreements(agreements: &[pb::FieldAgreement]) -> String {
    agreements
        .iter()
        .map(|a| format!("{} {}", a.field.replace('_', " "), a.description))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Search results as a table.
pub fn matches_table(found: &[pb::SearchMatch]) -> String {
    if found.is_empty() {
        return "no child matches\n".into();
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header([
        "weight",
        "identifier",
        "name",
        "born",
        "postcode",
        "authority",
        "how it matched",
    ]);
    for m in found {
        table.add_row([
            format!("{:.1}", m.match_weight),
            m.id.clone(),
            name(&m.name),
            date(&m.date_of_birth),
            if m.shielded {
                "(shielded)".to_owned()
            } else {
                m.postcode.clone()
            },
            m.responsible_authority
                .as_ref()
                .map_or(String::new(), |a| a.name.clone()),
            agreements(&m.agreements),
        ]);
    }
    format!("{table}\n")
}

pub fn whoami(me: &pb::WhoAmIResponse) -> String {
    let unit = if me.unit.is_empty() {
        String::new()
    } else {
        format!(" / {}", me.unit)
    };
    let role = if me.role_description.is_empty() {
        "no role: the access policy does not name this certificate".to_owned()
    } else {
        format!("{} ({})", me.role_description, me.role)
    };
    let conditions = if me.access_refused.is_empty() {
        "met".to_owned()
    } else {
        me.access_refused.clone()
    };
    format!(
        "you are   {}{unit} / {}\nrole      {role}\naccess    {conditions}\n",
        me.organisation, me.common_name
    )
}

pub fn notifications(told: &[pb::Notification]) -> String {
    if told.is_empty() {
        return "nothing to report\n".into();
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header(["#", "when", "what", "record", "who", "role", "reason"]);
    for n in told {
        let kind = pb::NotificationKind::try_from(n.kind)
            .map(|k| {
                k.as_str_name()
                    .trim_start_matches("NOTIFICATION_KIND_")
                    .to_lowercase()
            })
            .unwrap_or_default();
        table.add_row([
            n.notification_id.to_string(),
            n.at.clone(),
            kind,
            n.record_id.clone(),
            format!("{} / {}", n.organisation, n.name),
            n.role.clone(),
            n.reason.clone(),
        ]);
    }
    format!("{table}\n")
}

pub fn accesses(answer: &pb::SubjectAccessResponse) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header([
        "when",
        "authority",
        "who",
        "role",
        "what",
        "reason",
        "outcome",
    ]);
    for a in &answer.accesses {
        table.add_row([
            a.at.clone(),
            a.authority_code.clone(),
            format!("{} / {}", a.organisation, a.name),
            a.role.clone(),
            a.method.clone(),
            a.reason.clone(),
            a.outcome.clone(),
        ]);
    }
    format!(
        "record {} at {}: {} accesses\n{table}\n",
        answer.id,
        answer.authorities.join(", "),
        answer.accesses.len()
    )
}
