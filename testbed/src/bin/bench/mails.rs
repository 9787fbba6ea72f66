//! The benchmark's mails: customer replies as they arrive, about 2–4 KB each.
//!
//! Reply `i` goes to ticket `first + i % tickets` and is sent `i` minutes after a fixed
//! start, so a ticket's replies are in date order and tickets interleave as they would
//! in a real inbox. Even `i`: a plain-text reply with quoted history and a signature;
//! odd `i`: multipart/alternative with an HTML part (Gmail-style quote). Each body
//! carries `bench-id:<i>` so the posted replies can be matched back to their mail.

/// The first ticket number used.
pub(crate) const FIRST_TICKET: u64 = 100_000;

/// Which ticket reply `i` belongs to.
pub(crate) fn ticket_of(i: usize, tickets: usize) -> u64 {
    FIRST_TICKET + (i % tickets.max(1)) as u64
}

/// The marker of reply `i` in its body.
pub(crate) fn marker(i: usize) -> String {
    format!("bench-id:{i}")
}

/// Reads the `bench-id:<i>` marker back out of a posted body.
pub(crate) fn marker_in(body: &str) -> Option<usize> {
    let rest = &body[body.find("bench-id:")? + "bench-id:".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Reply `i` of a run with `tickets` tickets, as raw RFC 5322 bytes.
pub(crate) fn reply(i: usize, tickets: usize) -> Vec<u8> {
    let ticket = ticket_of(i, tickets);
    let nth = i / tickets.max(1) + 1;
    let date = rfc5322_date(i as u64);
    let headers = format!(
        "Return-Path: <customer{ticket}@example.com>\r\n\
         From: Customer {ticket} <customer{ticket}@example.com>\r\n\
         To: ACME Support <support@acme.example>\r\n\
         Subject: Re: [TH#{ticket}] Order {ticket}: delivery question\r\n\
         Date: {date}\r\n\
         Message-ID: <bench-{i}.{ticket}@customer.example>\r\n\
         In-Reply-To: <ticket-{ticket}-{nth}@acme.example>\r\n\
         References: <ticket-{ticket}@acme.example> <ticket-{ticket}-{nth}@acme.example>\r\n\
         MIME-Version: 1.0\r\n"
    );
    let marker = marker(i);
    let text = format!(
        "Hello,\r\n\r\nthank you for the quick answer about order {ticket} ({marker}, reply {nth}).\r\n\
         The parcel arrived this morning, but one of the three boxes was damaged in transit\r\n\
         and the blue cable inside it is bent. Could you send a replacement cable, or should\r\n\
         I return the whole set? The invoice number is FV/2026/{ticket}.\r\n\r\n\
         I attach nothing this time; the photos are in my previous message.\r\n\r\n\
         Best regards,\r\nCustomer {ticket}\r\n\r\n-- \r\nCustomer {ticket}\r\n\
         Customer Corp. | ul. Przykladowa 1, 00-001 Warszawa | +48 22 000 00 00\r\n\r\n\
         On Mon, 5 Jan 2026 at 07:00, ACME Support <support@acme.example> wrote:\r\n\
         > Dear customer,\r\n>\r\n> your order {ticket} was shipped yesterday in three boxes.\r\n\
         > The tracking number is 00340434161234567890; delivery usually takes one or two\r\n\
         > working days. Please check every box when it arrives and tell us at once if\r\n\
         > anything is missing or damaged, so that we can send a replacement quickly.\r\n>\r\n\
         > Kind regards,\r\n> ACME Support\r\n> [TH#{ticket}]\r\n"
    );
    if i.is_multiple_of(2) {
        return format!(
            "{headers}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}"
        )
        .into_bytes();
    }
    let html = format!(
        "<div dir=\"ltr\"><div>Hello,</div><div><br></div><div>thank you for the quick answer about \
         order <b>{ticket}</b> ({marker}, reply {nth}).</div><div>The parcel arrived this morning, but one of the \
         three boxes was damaged in transit and the <span style=\"color:blue\">blue cable</span> inside it is \
         bent. Could you send a replacement cable, or should I return the whole set? The invoice number is \
         FV/2026/{ticket}.</div><div><br></div><div>Best regards,<br>Customer {ticket}</div>\
         <div><br></div><div class=\"gmail_signature\">Customer {ticket}<br>Customer Corp. | ul. Przykladowa 1, \
         00-001 Warszawa</div></div><br><div class=\"gmail_quote\"><div dir=\"ltr\" class=\"gmail_attr\">On Mon, \
         5 Jan 2026 at 07:00, ACME Support &lt;support@acme.example&gt; wrote:<br></div>\
         <blockquote class=\"gmail_quote\" style=\"margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);\
         padding-left:1ex\">Dear customer,<br><br>your order {ticket} was shipped yesterday in three boxes. The \
         tracking number is 00340434161234567890; delivery usually takes one or two working days.<br><br>Kind \
         regards,<br>ACME Support<br>[TH#{ticket}]</blockquote></div>\r\n"
    );
    format!(
        "{headers}Content-Type: multipart/alternative; boundary=\"b-{i}\"\r\n\r\n\
         --b-{i}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n\
         --b-{i}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{html}\r\n\
         --b-{i}--\r\n"
    )
    .into_bytes()
}

/// `Date:` of reply `i`: 5 Jan 2026 08:00 +0100 plus `i` minutes.
fn rfc5322_date(minutes: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // 2026-01-05 is day 20458 since 1970-01-01.
    let total = 20_458 * 1440 + 8 * 60 + minutes;
    let (y, m, d) = civil_from_days((total / 1440) as i64);
    format!(
        "{d} {} {y} {:02}:{:02}:00 +0100",
        MONTHS[(m - 1) as usize],
        (total / 60) % 24,
        total % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_walk_the_calendar() {
        assert_eq!(rfc5322_date(0), "5 Jan 2026 08:00:00 +0100");
        assert_eq!(rfc5322_date(61), "5 Jan 2026 09:01:00 +0100");
        assert_eq!(rfc5322_date(27 * 1440), "1 Feb 2026 08:00:00 +0100");
    }

    #[test]
    fn markers_read_back() {
        let raw = String::from_utf8(reply(7, 3)).unwrap();
        assert!(raw.contains("[TH#100001]"), "{raw}");
        assert_eq!(marker_in(&raw), Some(7));
        assert_eq!(marker_in("no marker"), None);
    }
}
