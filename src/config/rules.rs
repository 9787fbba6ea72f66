//! The config compiled into the core's [`Rules`]: the core reads no config, so what
//! `decide` needs is handed over here, a bad pattern named by its key.

use super::{
    Config, Disposition, FiltersConfig, Invalid, MailboxConfig, MatchConfig, NewTicketConfig,
};
use crate::mail::classify::{PatternList, SenderRules};
use crate::mail::content::ContentConfig;
use crate::mail::decide::{NewTicketSettings, Rules};
use crate::mail::ticket::TicketMatcher;

impl Config {
    /// The rules of this config (`validate` compiles them too, for the keys it names).
    pub fn rules(&self) -> Result<Rules, Invalid> {
        compile(
            &self.matching,
            &self.filters,
            &self.content,
            self.timezone(),
            &self.thulium.agents,
        )
    }
}

/// The rules of an empty config (for `explain` without a config file).
pub fn default_rules() -> Result<Rules, Invalid> {
    compile(
        &MatchConfig::default(),
        &FiltersConfig::default(),
        &ContentConfig::default(),
        chrono_tz::Europe::Warsaw,
        &[],
    )
}

fn compile(
    matching: &MatchConfig,
    filters: &FiltersConfig,
    content: &ContentConfig,
    timezone: chrono_tz::Tz,
    agents: &[String],
) -> Result<Rules, Invalid> {
    Ok(Rules {
        tickets: TicketMatcher::new(&matching.subject_patterns)
            .map_err(|(i, e)| Invalid::new(format!("match.subject_patterns[{i}]"), e))?,
        senders: SenderRules::new(&filters.deny_senders, &filters.allow_senders)
            .map_err(|(k, e)| Invalid::new(format!("filters.{k}"), e))?,
        skip_auto_replies: filters.skip_auto_replies,
        skip_bounces: filters.skip_bounces,
        content: content.clone(),
        timezone,
        use_references: matching.use_references,
        own_addresses: lower_case_list(&filters.own_addresses),
        trusted_authserv_id: Vec::new(),
        new_ticket: None,
        vouched: false,
        agents: PatternList::new("agents", agents)
            .map_err(|(k, e)| Invalid::new(format!("thulium.{k}"), e))?,
    })
}

/// Trimmed, lower-cased, without empty entries.
fn lower_case_list(items: &[String]) -> Vec<String> {
    items
        .iter()
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| !a.is_empty())
        .collect()
}

impl MailboxConfig {
    /// `rules` as this mailbox applies them: its own address is the helpdesk's too,
    /// its receiving server's Authentication-Results ids are trusted, and it may open
    /// tickets.
    pub fn rules(&self, rules: &Rules) -> Rules {
        let mut rules = rules.clone();
        if let Some(own) = self.own_address()
            && !rules.own_addresses.contains(&own)
        {
            rules.own_addresses.push(own);
        }
        rules.trusted_authserv_id = self
            .trusted_authserv_id
            .iter()
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty())
            .collect();
        rules.new_ticket = match self.on_unmatched {
            Disposition::NewTicket => self.new_ticket.as_ref().map(NewTicketConfig::settings),
            _ => None,
        };
        rules
    }
}

impl NewTicketConfig {
    fn settings(&self) -> NewTicketSettings {
        NewTicketSettings {
            to: self.to.clone(),
            ticket_queue_id: self.ticket_queue_id,
            tags: self.tags.clone(),
            category_id: self.category_id,
            status_id: self.status_id,
            per_sender_per_hour: self.per_sender_per_hour,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(username: &str, trusted: &[&str]) -> MailboxConfig {
        let toml = format!(
            "name = \"support\"\nhost = \"imap.example.com\"\nusername = \"{username}\"\npassword = \"x\"\ntrusted_authserv_id = {trusted:?}\n"
        );
        match toml::from_str(&toml) {
            Ok(m) => m,
            Err(e) => panic!("test mailbox: {e}"),
        }
    }

    #[test]
    fn a_mailbox_adds_its_own_address_and_trusted_ids() {
        let mut base = default_rules().expect("default rules");
        base.own_addresses = vec!["help@helpdesk.example".into()];
        let r = mailbox("Support@Helpdesk.Example", &["mx.example.com", " "]).rules(&base);
        assert_eq!(
            r.own_addresses,
            ["help@helpdesk.example", "support@helpdesk.example"]
        );
        assert_eq!(r.trusted_authserv_id, ["mx.example.com"]);
        // A login name that is not an address adds nothing; the base rules are unchanged.
        let r = mailbox("support", &[]).rules(&base);
        assert_eq!(r.own_addresses, ["help@helpdesk.example"]);
        assert!(r.trusted_authserv_id.is_empty());
        assert!(base.trusted_authserv_id.is_empty());
    }

    #[test]
    fn a_mailbox_opens_tickets_only_with_on_unmatched_new_ticket() {
        let toml = |on_unmatched: &str| {
            format!(
                "name = \"support\"\nhost = \"imap.example.com\"\nusername = \"support\"\npassword = \"x\"\n\
                 on_unmatched = \"{on_unmatched}\"\n[new_ticket]\nto = \"help@acme.example\"\nticket_queue_id = 3\ntags = [\"e-mail\"]\n"
            )
        };
        let base = default_rules().expect("default rules");
        let rules_of =
            |on_unmatched: &str| match toml::from_str::<MailboxConfig>(&toml(on_unmatched)) {
                Ok(m) => m.rules(&base),
                Err(e) => panic!("test mailbox: {e}"),
            };
        assert_eq!(
            rules_of("new_ticket").new_ticket,
            Some(NewTicketSettings {
                to: "help@acme.example".into(),
                ticket_queue_id: Some(3),
                tags: vec!["e-mail".into()],
                category_id: None,
                status_id: None,
                per_sender_per_hour: 10,
            })
        );
        assert_eq!(rules_of("move:Unmatched").new_ticket, None);
    }

    /// The core's tests start from `Rules::for_tests`: it must be what an empty config
    /// gives.
    #[test]
    fn the_core_tests_with_the_default_rules() {
        let config = format!("{:?}", default_rules().expect("default rules"));
        assert_eq!(config, format!("{:?}", Rules::for_tests()));
    }
}
