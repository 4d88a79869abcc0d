//! The checkout page's HTML. Every state (choosing, paying, paid, expired, failed, gone) is
//! written here, in the page's language, each value escaped; the script only shows the
//! right one and fills in values as text.

use aggregates::{Channel, Period, Plan, Tier};

use super::html::escape;
use super::i18n::{Lang, Strings};

/// What the page shows before its script runs.
#[derive(Debug)]
pub struct PageModel {
    pub lang: Lang,
    /// `/checkout/{secret}`; `None` on the result page, whose script reads it from the
    /// fragment.
    pub base: Option<String>,
    /// The order to show at once (the session's newest, or the result page's).
    pub order: Option<String>,
    /// The plans to choose from; one when the session names it.
    pub plans: Vec<Plan>,
    /// The channels to choose from; one when the session names it.
    pub channels: Vec<Channel>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
}

impl PageModel {
    /// Nothing to choose: the page asks for a code at once.
    fn autostart(&self) -> bool {
        self.plans.len() == 1 && self.channels.len() == 1
    }
}

pub fn checkout_page(model: &PageModel) -> String {
    let text = model.lang.strings();
    let data = |name: &str, value: Option<&str>| {
        value.map_or_else(String::new, |value| {
            format!(r#" data-{name}="{}""#, escape(value))
        })
    };
    let root = format!(
        r#"<main id="checkout" class="card"{}{}{}{}{}>"#,
        data("base", model.base.as_deref()),
        data("order", model.order.as_deref()),
        data("success-url", model.success_url.as_deref()),
        data("cancel-url", model.cancel_url.as_deref()),
        data("autostart", model.autostart().then_some("1")),
    );
    let cancel = model.cancel_url.as_deref().map_or_else(String::new, |url| {
        format!(
            r#"<footer><a id="cancel" class="quiet" href="{}">{}</a></footer>"#,
            escape(url),
            escape(text.cancel)
        )
    });
    let head = head(text);
    let body = [
        root,
        header(text),
        r#"<p id="status" class="status" role="status" aria-live="polite"></p>"#.to_owned(),
        panel(
            "loading",
            text.loading,
            &format!("<p>{}</p>", escape(text.loading)),
        ),
        panel("choose", "", &chooser(model, text)),
        panel("pay", text.waiting, &paying(text)),
        panel("paid", text.paid, &paid(text)),
        panel("expired", text.expired, &retry(text.expired, text)),
        panel("failed", text.failed, &retry(text.failed, text)),
        panel("gone", text.gone, &format!("<p>{}</p>", escape(text.gone))),
        panel("error", text.error, &retry(text.error, text)),
        cancel,
        "</main>".to_owned(),
    ]
    .concat();
    format!(
        "<!doctype html>\n<html lang=\"{}\">{head}<body>{body}</body></html>\n",
        model.lang.tag()
    )
}

/// The page for a link that opens nothing (unknown or expired), or, when `gone` is false,
/// for a failure of ours.
pub fn notice_page(lang: Lang, gone: bool) -> String {
    let text = lang.strings();
    let message = if gone { text.gone } else { text.error };
    format!(
        "<!doctype html>\n<html lang=\"{}\">{}<body><main class=\"card\">{}<p role=\"alert\">{}</p></main></body></html>\n",
        lang.tag(),
        head(text),
        header(text),
        escape(message)
    )
}

fn head(text: &Strings) -> String {
    format!(
        concat!(
            "<head><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<meta name=\"referrer\" content=\"no-referrer\">",
            "<title>{}</title>",
            "<link rel=\"stylesheet\" href=\"/checkout/assets/checkout.css\">",
            "<script src=\"/checkout/assets/checkout.js\" defer></script>",
            "</head>"
        ),
        escape(text.title)
    )
}

fn header(text: &Strings) -> String {
    format!(
        r#"<header class="top"><h1>{}</h1><a class="lang" href="?lang={}" hreflang="{}">{}</a></header>"#,
        escape(text.title),
        escape(text.other_language_tag),
        escape(text.other_language_tag),
        escape(text.other_language)
    )
}

fn panel(name: &str, announce: &str, inner: &str) -> String {
    format!(
        r#"<section data-panel="{name}" data-announce="{}" hidden>{inner}</section>"#,
        escape(announce)
    )
}

fn chooser(model: &PageModel, text: &Strings) -> String {
    let plans: String = model
        .plans
        .iter()
        .enumerate()
        .map(|(index, plan)| {
            option(
                "plan",
                plan.id.as_str(),
                index == 0,
                &format!(
                    r#"<span class="name">{}</span><span class="tier">{}</span><span class="price">¥{} / {}</span>"#,
                    escape(&plan.name),
                    escape(tier(plan.tier, text)),
                    super::yuan(plan.price.amount_minor()),
                    escape(&period(plan.period, text))
                ),
            )
        })
        .collect();
    let channels: String = model
        .channels
        .iter()
        .enumerate()
        .map(|(index, channel)| {
            let label = match channel {
                Channel::AlipayQr => text.alipay,
                Channel::WxPubQr => text.wechat,
            };
            option(
                "channel",
                channel.as_str(),
                index == 0,
                &format!(r#"<span class="name">{}</span>"#, escape(label)),
            )
        })
        .collect();
    format!(
        concat!(
            r#"<form id="choose-form">"#,
            r#"<fieldset><legend>{}</legend>{}</fieldset>"#,
            r#"<fieldset><legend>{}</legend>{}</fieldset>"#,
            r#"<button type="submit" class="primary">{}</button></form>"#
        ),
        escape(text.choose_plan),
        plans,
        escape(text.choose_channel),
        channels,
        escape(text.pay)
    )
}

fn option(name: &str, value: &str, checked: bool, label: &str) -> String {
    format!(
        r#"<label class="option"><input type="radio" name="{name}" value="{}"{}>{label}</label>"#,
        escape(value),
        if checked { " checked" } else { "" }
    )
}

fn tier(tier: Tier, text: &Strings) -> &'static str {
    match tier {
        Tier::Free => text.tier_free,
        Tier::Pro => text.tier_pro,
        Tier::Enterprise => text.tier_enterprise,
    }
}

fn period(period: Period, text: &Strings) -> String {
    match period {
        Period::Monthly => text.monthly.to_owned(),
        Period::Yearly => text.yearly.to_owned(),
        Period::Months(count) => text.every_months.replace("{n}", &count.to_string()),
        Period::Days(count) => text.for_days.replace("{n}", &count.to_string()),
    }
}

fn paying(text: &Strings) -> String {
    format!(
        concat!(
            r#"<p class="hint">{}</p>"#,
            r#"<img id="qr" class="qr" alt="{}" width="232" height="232">"#,
            r#"<p class="hint"><a id="sandbox-link" class="quiet" target="_blank" rel="noopener" href="/" hidden>{}</a></p>"#,
            r#"<dl class="facts">"#,
            r#"<dt>{}</dt><dd class="amount">¥<span id="amount"></span></dd>"#,
            r#"<dt>{}</dt><dd id="plan-name"></dd>"#,
            r#"<dt>{}</dt><dd id="order-id" class="mono"></dd>"#,
            r#"<dt>{}</dt><dd><time id="countdown"></time></dd>"#,
            r#"</dl>"#
        ),
        escape(text.scan),
        escape(text.scan),
        escape(text.sandbox_pay),
        escape(text.amount),
        escape(text.plan),
        escape(text.order_number),
        escape(text.expires_in)
    )
}

fn paid(text: &Strings) -> String {
    format!(
        concat!(
            r#"<h2 class="ok">{}</h2>"#,
            r#"<p>{} <strong id="member-until"></strong></p>"#,
            r#"<p class="mono small order-ref" id="paid-order"></p>"#,
            r#"<a id="success-link" class="button primary" href="/" hidden>{}</a>"#,
            r#"<p><a id="details-link" class="quiet" href="/" hidden>{}</a></p>"#
        ),
        escape(text.paid),
        escape(text.member_until),
        escape(text.back_to_shop),
        escape(text.details)
    )
}

fn retry(heading: &str, text: &Strings) -> String {
    format!(
        concat!(
            r#"<h2 class="bad">{}</h2><p class="mono small order-ref"></p>"#,
            r#"<button type="button" class="primary" data-action="retry">{}</button>"#
        ),
        escape(heading),
        escape(text.retry)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use aggregates::PlanCatalog;

    use super::*;

    #[test]
    fn merchant_urls_and_plan_names_are_escaped_everywhere() {
        let mut plan = PlanCatalog::standard().plans()[1].clone();
        plan.name = "<img src=x onerror=alert(1)>".to_owned();
        let model = PageModel {
            lang: Lang::En,
            base: Some("/checkout/abc".to_owned()),
            order: None,
            plans: vec![plan],
            channels: vec![Channel::AlipayQr],
            success_url: Some("https://shop.example/?a=\"><script>alert(1)</script>".to_owned()),
            cancel_url: Some("https://shop.example/'onmouseover='alert(1)".to_owned()),
        };
        let page = checkout_page(&model);
        assert!(!page.contains("<img src=x"), "{page}");
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("'onmouseover"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(
            page.contains(r#"data-autostart="1""#),
            "one plan, one channel"
        );
        // The only script is the embedded file.
        assert_eq!(page.matches("<script").count(), 1);
        assert!(page.contains(r#"<script src="/checkout/assets/checkout.js" defer></script>"#));
    }
}
