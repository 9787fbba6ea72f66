//! End-to-end cases of `extract`: one raw mail in, one body out.

use super::*;
use crate::mail::content::Prefer;
use crate::mail::size::ByteSize;
use mail_parser::MessageParser;

fn mail(content_type: &str, body: &str) -> String {
    format!(
        "From: a@example.com\r\nSubject: Re: [TH#1] x\r\nContent-Type: {content_type}; charset=utf-8\r\n\r\n{body}"
    )
}

/// The body's text and type; its attachment list is checked where it matters.
fn extract_raw(raw: &str, content: &ContentConfig) -> Body {
    let msg = MessageParser::default()
        .parse(raw.as_bytes())
        .expect("test mail parses");
    Body {
        attachments: Vec::new(),
        ..extract(&msg, content)
    }
}

fn html(body: &str) -> Body {
    extract_raw(&mail("text/html", body), &ContentConfig::default())
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The visible text of an HTML body, whitespace normalized.
fn seen(b: &Body) -> String {
    assert_eq!(b.body_type, BodyType::Html, "{b:?}");
    assert!(
        sanitize::tests::violations(&b.text).is_empty(),
        "{}",
        b.text
    );
    words(&html_to_text(&b.text))
}

#[test]
fn gmail_quote() {
    let b = html(
        r#"<div dir="ltr">Hello<div><br></div></div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, Apr 2, 2012 at 6:26 PM, Megan &lt;<a href="mailto:m@example.com">m@example.com</a>&gt; wrote:<br></div><blockquote class="gmail_quote" style="margin:0 0 0 .8ex">Hi</blockquote></div>"#,
    );
    assert_eq!(seen(&b), "Hello");
    assert!(!b.text.contains("<blockquote"), "{}", b.text);
}

#[test]
fn gmail_signature_and_quote() {
    let b = html(
        r#"<div>Thanks!</div><br>-- <br><div dir="ltr" class="gmail_signature">Jan Kowalski<br>ACME</div><br><div class="gmail_quote">W dniu pon., 11 mar 2024 o 09:00 Pomoc &lt;p@example.pl&gt; napisał(a):<blockquote class="gmail_quote">Pytanie</blockquote></div>"#,
    );
    assert_eq!(seen(&b), "Thanks!");
}

#[test]
fn outlook_web_reply() {
    let b = html(
        r#"<html><head><style>p{margin:0}</style></head><body><div>Works now, thanks.</div><div id="appendonsend"></div><hr style="display:inline-block;width:98%" tabindex="-1"><div id="divRplyFwdMsg" dir="ltr"><font face="Calibri"><b>From:</b> Support &lt;s@example.com&gt;<br><b>Sent:</b> Monday, March 11, 2024 9:00 AM<br><b>To:</b> Jan<br><b>Subject:</b> Re: [TH#1] x</font><div>&nbsp;</div></div><div>Earlier message</div></body></html>"#,
    );
    assert_eq!(seen(&b), "Works now, thanks.");
    assert!(!b.text.contains("<html") && !b.text.contains("<head") && !b.text.contains("margin"));
}

#[test]
fn outlook_desktop_separator() {
    for color in ["#E1E1E1", "#B5C4DF"] {
        let b = html(&format!(
            r#"<div class="WordSection1"><p class="MsoNormal">Hi team<o:p></o:p></p><div style="border:none;border-top:solid {color} 1.0pt;padding:3.0pt 0cm 0cm 0cm"><p class="MsoNormal"><b>From:</b> X<br><b>Sent:</b> Monday<br><b>To:</b> Y<br><b>Subject:</b> Z</p></div><p>old</p></div>"#
        ));
        assert_eq!(seen(&b), "Hi team", "{color}");
    }
}

#[test]
fn outlook_header_block_without_container() {
    let b = html(
        "<p>Hello</p><hr><p><b>From:</b> Foo [mailto:foo@bar.com]<br><b>Sent:</b> Monday, January 01, 2000 12:00 AM<br><b>To:</b> john@bar.com<br><b>Subject:</b> Conversation</p><p>Old text</p>",
    );
    assert_eq!(seen(&b), "Hello");
    let b = html(
        "<div>Hello</div><div>-----Original Message-----<br>From: a<br>Sent: b<br>To: c<br>Subject: d<br><br>Hi</div>",
    );
    assert_eq!(seen(&b), "Hello");
}

#[test]
fn apple_mail_blockquote_cite() {
    let b = html(
        r#"<div>Sounds good.</div><div><br><blockquote type="cite"><div>On 22 Aug 2015, at 19:21, Adam &lt;a@example.com&gt; wrote:</div><br><div>Hi there!</div></blockquote></div>"#,
    );
    assert_eq!(seen(&b), "Sounds good.");
}

#[test]
fn thunderbird_top_and_bottom_posting() {
    let quote = r#"<div class="moz-cite-prefix">On 26.06.2014 14:41, Alexander L
      wrote:<br></div><blockquote type="cite" cite="mid:x@y">Hello! How are you?</blockquote>"#;
    assert_eq!(
        seen(&html(&format!("Hi. I am fine.<br>{quote}<br>"))),
        "Hi. I am fine."
    );
    assert_eq!(
        seen(&html(&format!("{quote}<br>I am fine, below the quote."))),
        "I am fine, below the quote."
    );
    let sig = r#"Hi<br><pre class="moz-signature" cols="72">-- 
Jan</pre>"#;
    assert_eq!(seen(&html(sig)), "Hi");
}

#[test]
fn yahoo_quoted() {
    let b = html(
        r#"<div>Fine.</div><div class="yahoo_quoted"><div>On Monday, March 11, 2024, 09:00:00 AM GMT+1, Support &lt;s@example.com&gt; wrote:</div><div><div>Old</div></div></div>"#,
    );
    assert_eq!(seen(&b), "Fine.");
}

#[test]
fn polish_html_forms() {
    let b = html(
        "<p>Dziękuję za pomoc.</p><p>W dniu 12.03.2024 o 10:15, Pomoc &lt;pomoc@example.pl&gt; pisze:</p><blockquote>Dzień dobry</blockquote>",
    );
    assert_eq!(seen(&b), "Dziękuję za pomoc.");
    let b = html(
        "<p>Proszę o fakturę.</p><p><b>Od:</b> Pomoc Thulium<br><b>Wysłane:</b> poniedziałek, 11 marca 2024 09:00<br><b>Do:</b> Jan<br><b>Temat:</b> Zamówienie</p><p>Stara wiadomość</p>",
    );
    assert_eq!(seen(&b), "Proszę o fakturę.");
    let b = html(
        "<div>OK</div><div><br></div><div>Wysłane z iPhone'a</div><div><br>-----Wiadomość oryginalna-----<br>Od: X<br>Data: wtorek<br>Do: Y<br>Temat: Z</div><div>stare</div>",
    );
    assert_eq!(seen(&b), "OK");
}

#[test]
fn plain_blockquote_with_intro_line() {
    let b = html(
        r#"<p>Hi. I am fine.<br /><br />Thanks,<br />Alex<br /><br />26.06.2014, 14:41, "Alexander L" &lt;<a href="mailto:abc@example.com">abc@example.com</a>&gt;:</p><blockquote> Hello! How are you?</blockquote>"#,
    );
    assert_eq!(seen(&b), "Hi. I am fine. Thanks, Alex");
}

#[test]
fn outlook_signature_container() {
    let b =
        html(r#"<div>Reply text</div><div id="Signature"><div>Jan Kowalski | ACME</div></div>"#);
    assert_eq!(seen(&b), "Reply text");
}

#[test]
fn html_cut_that_leaves_nothing_keeps_the_body() {
    let b = html(
        r#"<div class="gmail_quote">On Mon, Apr 2, 2012 at 6:26 PM, M &lt;m@example.com&gt; wrote:<blockquote>forwarded content</blockquote></div>"#,
    );
    assert_eq!(
        seen(&b),
        "On Mon, Apr 2, 2012 at 6:26 PM, M <m@example.com> wrote: > forwarded content"
    );
    let b = html(r#"<div class="gmail_signature">Only a signature</div>"#);
    assert_eq!(seen(&b), "Only a signature");
}

#[test]
fn toggles_off_keep_everything() {
    let content = ContentConfig {
        strip_quotes: false,
        strip_signatures: false,
        ..ContentConfig::default()
    };
    let raw = mail(
        "text/html",
        r#"<div>Hi</div>-- <br><div class="gmail_signature">Sig</div><div class="gmail_quote">On Mon, 1 Jan 2024, X &lt;x@example.com&gt; wrote:<blockquote>Q</blockquote></div>"#,
    );
    let b = extract_raw(&raw, &content);
    assert_eq!(
        seen(&b),
        "Hi -- Sig On Mon, 1 Jan 2024, X <x@example.com> wrote: > Q"
    );
}

#[test]
fn plain_text_mail() {
    let raw = mail(
        "text/plain",
        "Hello\r\n\r\nOn Mon, Apr 2, 2012 at 6:26 PM, Megan <m@example.com> wrote:\r\n\r\n> Hi\r\n",
    );
    let b = extract_raw(&raw, &ContentConfig::default());
    assert_eq!(
        b,
        Body {
            text: "Hello".into(),
            body_type: BodyType::Plain,
            attachments: Vec::new(),
        }
    );
}

#[test]
fn html_only_mail_with_plain_preferred_becomes_text() {
    let content = ContentConfig {
        prefer: Prefer::Plain,
        ..ContentConfig::default()
    };
    let raw = mail(
        "text/html",
        r#"<p>Hi &amp; bye<br>line 2</p><script>x()</script><div class="gmail_quote">On 1.1.2024 X wrote:<blockquote>q</blockquote></div>"#,
    );
    let b = extract_raw(&raw, &content);
    assert_eq!(
        b,
        Body {
            text: "Hi & bye\nline 2".into(),
            body_type: BodyType::Plain,
            attachments: Vec::new(),
        }
    );
}

#[test]
fn only_attachments_give_the_note_as_the_body() {
    let raw = "From: a@example.com\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n";
    let expected = Body {
        text: "Attachments: a.pdf (3 B)".into(),
        body_type: BodyType::Plain,
        attachments: Vec::new(),
    };
    assert_eq!(extract_raw(raw, &ContentConfig::default()), expected);
    // The note is all such a reply has, so it is the body even with the note turned off.
    let off = ContentConfig {
        attachment_note: false,
        ..ContentConfig::default()
    };
    assert_eq!(extract_raw(raw, &off), expected);
    // An empty text part beside the attachment is no body either.
    let empty_text = concat!(
        "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n",
        "--m\r\nContent-Type: text/html\r\n\r\n<div><br></div>\r\n",
        "--m\r\nContent-Type: image/jpeg\r\nContent-Disposition: attachment; filename=\"scan\u{202e}gpj.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n",
        "--m--\r\n"
    );
    assert_eq!(
        extract_raw(empty_text, &ContentConfig::default()),
        Body {
            text: "Attachments: scangpj.exe (3 B)".into(),
            body_type: BodyType::Plain,
            attachments: Vec::new(),
        }
    );
}

#[test]
fn nothing_at_all_is_an_empty_body() {
    let raw = "From: a@example.com\r\nContent-Type: text/plain\r\n\r\n \r\n";
    assert_eq!(
        extract_raw(raw, &ContentConfig::default()),
        Body {
            text: String::new(),
            body_type: BodyType::Plain,
            attachments: Vec::new(),
        }
    );
}

#[test]
fn bidi_controls_are_stripped_from_bodies() {
    let b = extract_raw(
        &mail("text/plain", "Pay \u{202e}0001\u{202c} PLN\u{200f}\r\n"),
        &ContentConfig::default(),
    );
    assert_eq!(b.text, "Pay 0001 PLN");
    // Written as characters or as references, in text and in attributes.
    let b = html("<p title=\"a\u{2067}b\">Pay &#x202E;0001&#8236; PLN&rlm;\u{2066}x\u{2069}</p>");
    assert_eq!(b.text, "<p title=\"ab\">Pay 0001 PLNx</p>");
}

#[test]
fn a_flood_of_ampersands_is_bounded_and_whole() {
    let b = html(&"&amp;".repeat(400_000));
    let max = ContentConfig::default().max_body_size.bytes() as usize;
    assert!(b.text.len() <= max, "{}", b.text.len());
    assert!(b.text.starts_with("&amp;&amp;"), "{}", &b.text[..40]);
    assert!(!b.text.contains("<!--"));
    assert!(
        b.text.contains("message truncated"),
        "{}",
        &b.text[b.text.len() - 200..]
    );
    let b = html(&"& ".repeat(400_000));
    assert!(b.text.len() <= max, "{}", b.text.len());
}

#[test]
fn cid_images_match_whatever_the_case() {
    let raw = concat!(
        "From: a@example.com\r\nContent-Type: multipart/related; boundary=r\r\n\r\n",
        "--r\r\nContent-Type: text/html\r\n\r\n<p>See <img src=\"cid:CHART@X\"></p>\r\n",
        "--r\r\nContent-Type: image/png; name=chart.png\r\nContent-ID: <chart@x>\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n",
        "--r--\r\n"
    );
    let b = extract_raw(raw, &ContentConfig::default());
    assert_eq!(b.text, "<p>See [chart.png]</p>");
}

const WITH_IMAGES: &str = concat!(
    "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n",
    "--m\r\nContent-Type: multipart/related; boundary=r\r\n\r\n",
    "--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
    "<p>See <img src=\"cid:chart@x\"> and <img src=\"cid:logo@x\" alt=\"Logo\"> and ",
    "<img src=\"https://track.example/p.gif\" width=1 height=1><img src=\"https://e.example/a.png\" alt=\"remote\"></p>\r\n",
    "--r\r\nContent-Type: image/png; name=chart.png\r\nContent-ID: <chart@x>\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n",
    "--r\r\nContent-Type: image/png; name=logo.png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n",
    "--r--\r\n",
    "--m\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=invoice.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n",
    "AAAAAAAAAAAAAAAA\r\n",
    "--m--\r\n"
);

#[test]
fn images_and_attachment_note_html() {
    let b = extract_raw(WITH_IMAGES, &ContentConfig::default());
    assert_eq!(
        seen(&b),
        "See [chart.png] and [Logo] and [remote] Attachments: invoice.pdf (12 B)"
    );
    assert!(!b.text.contains("<img"), "{}", b.text);
    assert!(
        b.text.ends_with("<p>Attachments: invoice.pdf (12 B)</p>"),
        "{}",
        b.text
    );

    let keep = ContentConfig {
        remote_images: RemoteImages::Keep,
        ..ContentConfig::default()
    };
    let b = extract_raw(WITH_IMAGES, &keep);
    assert!(
        b.text
            .contains(r#"<img src="https://e.example/a.png" alt="remote">"#),
        "{}",
        b.text
    );
    assert!(!b.text.contains("cid:"), "{}", b.text);
}

#[test]
fn attachment_note_plain() {
    let raw = concat!(
        "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n",
        "--m\r\nContent-Type: text/plain\r\n\r\nHello\r\n",
        "--m\r\nContent-Type: image/jpeg\r\nContent-Disposition: attachment; filename=photo.jpg\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n",
        "--m--\r\n"
    );
    let b = extract_raw(raw, &ContentConfig::default());
    assert_eq!(b.text, "Hello\n\nAttachments: photo.jpg (3 B)");
    let off = ContentConfig {
        attachment_note: false,
        ..ContentConfig::default()
    };
    assert_eq!(extract_raw(raw, &off).text, "Hello");
}

#[test]
fn max_body_size_cuts_html_and_closes_tags() {
    let content = ContentConfig {
        max_body_size: ByteSize(2048),
        ..ContentConfig::default()
    };
    let body = format!("<div><p><b>{}</b></p></div>", "żółw ".repeat(2000));
    let b = extract_raw(&mail("text/html", &body), &content);
    assert!(b.text.len() <= 2048, "{}", b.text.len());
    assert!(b.text.contains("</b></p></div>"), "{}", b.text);
    assert!(
        b.text
            .contains("message truncated by thulium-mail-bridge: "),
        "{}",
        b.text
    );
    assert!(b.text.contains(" over the limit]"));
}

#[test]
fn max_body_size_cuts_text_on_a_char_boundary() {
    let content = ContentConfig {
        max_body_size: ByteSize(1024),
        ..ContentConfig::default()
    };
    let b = extract_raw(&mail("text/plain", &"ż".repeat(5000)), &content);
    assert!(b.text.len() <= 1024);
    assert!(b.text.ends_with("over the limit]"), "{}", b.text);
    assert!(b.text.starts_with("żż"));
}

#[test]
fn hostile_html_is_sanitized() {
    let b = html(
        r#"<p onclick="x()">Hi<script>alert(1)</script><a href="javascript:alert(1)">l</a><a href="data:text/html,x">d</a><iframe src="https://x"></iframe><form><input></form><img src=x onerror=alert(1)></p>"#,
    );
    assert_eq!(seen(&b), "Hild");
}

#[test]
fn forged_marks_are_removed() {
    let b = html("<p>A\u{10FFFD}B\u{10FFFC}C</p>");
    assert_eq!(seen(&b), "ABC");
    assert!(!b.text.contains(markers::QUOTE_MARK));
}

/// How long these take is `benches/hostile.rs`'s business ("text: 2 MB of one '>'
/// line", "html: 100k nested <div>", "text: 300k 'On Monday' lines").
#[test]
fn a_huge_quote_deep_html_and_many_reply_lines_are_read() {
    let content = ContentConfig::default();
    let quote = format!("Hi folks\n\nWhat now?\n{}\n", ">".repeat(800_000));
    let b = extract_raw(&mail("text/plain", &quote), &content);
    assert_eq!(b.text, "Hi folks\n\nWhat now?");
    let deep = format!("<p>Hi</p>{}", "<div><span>".repeat(200_000));
    let b = extract_raw(&mail("text/html", &deep), &content);
    assert!(
        b.text.starts_with("<p>Hi</p>") || b.text.contains("Hi"),
        "{}",
        &b.text[..100.min(b.text.len())]
    );
    let many_lines = "On Monday\n".repeat(300_000);
    let b = extract_raw(&mail("text/plain", &many_lines), &content);
    assert!(
        b.text.starts_with("On Monday"),
        "{}",
        &b.text[..100.min(b.text.len())]
    );
}

#[test]
fn html_with_nothing_visible_falls_back_to_text() {
    let raw = concat!(
        "From: a@example.com\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n",
        "--b\r\nContent-Type: text/plain\r\n\r\nHello\r\n",
        "--b\r\nContent-Type: text/html\r\n\r\n<p><img src=\"https://t.example/x.gif\"></p>\r\n",
        "--b--\r\n"
    );
    let b = extract_raw(raw, &ContentConfig::default());
    assert_eq!(
        b,
        Body {
            text: "Hello".into(),
            body_type: BodyType::Plain,
            attachments: Vec::new(),
        }
    );
    let only_pixel = mail("text/html", "<img src=\"https://t.example/x.gif\">");
    assert_eq!(
        extract_raw(&only_pixel, &ContentConfig::default()),
        Body {
            text: String::new(),
            body_type: BodyType::Plain,
            attachments: Vec::new(),
        }
    );
    assert_eq!(
        extract_raw(&mail("text/plain", " \r\n\r\n"), &ContentConfig::default()).text,
        ""
    );
}

#[test]
fn undecoded_html_alternative_is_still_the_html_body() {
    let raw = concat!(
        "From: a@example.com\r\nContent-Type: multipart/related; boundary=\"outer\"\r\n\r\n",
        "--outer\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n",
        "--inner\r\nContent-Type: text/plain; charset=\"windows-1250\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nDzie=F1 dobry\r\n",
        "--inner\r\nContent-Type: text/html; charset=\"windows-1250\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p class=3D\"x\">Dzie=F1 <b>dobry</b></p>\r\n",
        "--outer--\r\n"
    );
    let b = extract_raw(raw, &ContentConfig::default());
    assert_eq!(
        b,
        Body {
            text: "<p>Dzień <b>dobry</b></p>".into(),
            body_type: BodyType::Html,
            attachments: Vec::new(),
        }
    );
}

mod properties {
    use super::*;
    use crate::mail::body::sanitize::tests::hostile_piece;
    use proptest::prelude::*;

    fn reply_piece() -> impl Strategy<Value = String> {
        prop_oneof![
            hostile_piece(),
            prop::sample::select(vec![
                "<div class=\"gmail_quote\">",
                "<blockquote type=\"cite\">",
                "</blockquote>",
                "<div id=\"divRplyFwdMsg\">",
                "<div class=\"gmail_signature\">",
                "</div>",
                "On Mon, 1 Jan 2024, X <x@example.com> wrote:<br>",
                "W dniu 1.01.2024 o 10:00, Jan pisze:<br>",
                "<b>From:</b> a<br><b>Sent:</b> b<br><b>To:</b> c<br><b>Subject:</b> d<br>",
                "-- <br>",
                "&gt; quoted<br>",
                "Hello there<br>",
                "<img src=\"cid:x@y\" alt=\"pic\">",
                "<p>",
                "żółć ",
            ])
            .prop_map(str::to_string),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_raw_mail_gives_a_bounded_body(raw in prop::collection::vec(any::<u8>(), 0..2000)) {
            if let Some(msg) = MessageParser::default().parse(&raw[..]) {
                let content = ContentConfig { max_body_size: ByteSize(1024), ..ContentConfig::default() };
                let b = extract(&msg, &content);
                prop_assert!(b.text.len() <= 1024);
            }
        }

        #[test]
        fn generated_html_replies_give_safe_bounded_bodies(
            pieces in prop::collection::vec(reply_piece(), 0..60),
            keep_images in any::<bool>(),
            prefer_plain in any::<bool>(),
        ) {
            let content = ContentConfig {
                max_body_size: ByteSize(1024),
                remote_images: if keep_images { RemoteImages::Keep } else { RemoteImages::Drop },
                prefer: if prefer_plain { Prefer::Plain } else { Prefer::Html },
                ..ContentConfig::default()
            };
            let b = extract_raw(&mail("text/html", &pieces.concat()), &content);
            prop_assert!(b.text.len() <= 1024, "{} bytes", b.text.len());
            prop_assert!(!b.text.contains(markers::QUOTE_MARK) && !b.text.contains(markers::SIGNATURE_MARK));
            if b.body_type == BodyType::Html {
                let v = sanitize::tests::violations(&b.text);
                prop_assert!(v.is_empty(), "{:?} in {}", v, b.text);
            }
        }
    }
}

#[test]
fn gmail_forward_is_kept() {
    let b = html(
        r#"<div dir="ltr">See below<br><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">---------- Forwarded message ---------<br>From: <b>Courier</b> &lt;c@example.com&gt;<br>Date: Mon, 11 Mar 2024<br>Subject: Parcel<br>To: &lt;jan@example.pl&gt;<br></div><br><div dir="ltr">Your parcel is delayed.</div></div></div>"#,
    );
    assert_eq!(
        seen(&b),
        "See below ---------- Forwarded message --------- From: Courier <c@example.com> Date: Mon, 11 Mar 2024 Subject: Parcel To: <jan@example.pl> Your parcel is delayed."
    );
}
