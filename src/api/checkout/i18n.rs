//! The page's words in Chinese (the default) and English, chosen by `?lang=` or the
//! browser's `Accept-Language`.

use axum::http::header::ACCEPT_LANGUAGE;
use axum::http::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// `?lang=en|zh` wins; else the browser's most preferred of English and Chinese; else
    /// Chinese.
    pub fn choose(query: Option<&str>, headers: &HeaderMap) -> Self {
        if let Some(lang) = query.and_then(Self::named) {
            return lang;
        }
        headers
            .get(ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
            .and_then(Self::preferred)
            .unwrap_or(Self::Zh)
    }

    fn named(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Self::En),
            "zh" => Some(Self::Zh),
            _ => None,
        }
    }

    /// The supported language with the highest weight (`q`); the first listed on a tie.
    fn preferred(header: &str) -> Option<Self> {
        let mut best: Option<(Self, u16)> = None;
        for entry in header.split(',') {
            let mut parts = entry.split(';');
            let Some(lang) = parts.next().and_then(Self::named) else {
                continue;
            };
            let weight = parts
                .find_map(|part| part.trim().strip_prefix("q="))
                .map_or(1000, quality);
            if weight > 0 && best.map_or(true, |(_, seen)| weight > seen) {
                best = Some((lang, weight));
            }
        }
        best.map(|(lang, _)| lang)
    }

    pub fn tag(self) -> &'static str {
        match self {
            Self::Zh => "zh-CN",
            Self::En => "en",
        }
    }

    pub fn strings(self) -> &'static Strings {
        match self {
            Self::Zh => &ZH,
            Self::En => &EN,
        }
    }
}

/// `q=0.8` as thousandths, without floating point; anything unreadable counts as 0.
fn quality(text: &str) -> u16 {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
    match (whole, digits.parse::<u16>()) {
        ("1", _) => 1000,
        ("0", Ok(thousandths)) if fraction.chars().all(|c| c.is_ascii_digit()) => thousandths,
        _ => 0,
    }
}

/// Every text the page shows.
#[derive(Debug)]
pub struct Strings {
    pub title: &'static str,
    pub choose_plan: &'static str,
    pub choose_channel: &'static str,
    pub alipay: &'static str,
    pub wechat: &'static str,
    pub tier_free: &'static str,
    pub tier_pro: &'static str,
    pub tier_enterprise: &'static str,
    pub monthly: &'static str,
    pub yearly: &'static str,
    /// "every N months" / "for N days", with `{n}` for the count.
    pub every_months: &'static str,
    pub for_days: &'static str,
    pub pay: &'static str,
    pub scan: &'static str,
    pub sandbox_pay: &'static str,
    pub amount: &'static str,
    pub plan: &'static str,
    pub order_number: &'static str,
    pub expires_in: &'static str,
    pub loading: &'static str,
    pub waiting: &'static str,
    pub paid: &'static str,
    pub member_until: &'static str,
    pub back_to_shop: &'static str,
    pub expired: &'static str,
    pub failed: &'static str,
    pub retry: &'static str,
    pub cancel: &'static str,
    pub gone: &'static str,
    pub error: &'static str,
    pub other_language: &'static str,
    pub other_language_tag: &'static str,
    pub details: &'static str,
}

const ZH: Strings = Strings {
    title: "收银台",
    choose_plan: "选择套餐",
    choose_channel: "支付方式",
    alipay: "支付宝",
    wechat: "微信支付",
    tier_free: "免费版",
    tier_pro: "专业版",
    tier_enterprise: "企业版",
    monthly: "每月",
    yearly: "每年",
    every_months: "每 {n} 个月",
    for_days: "{n} 天",
    pay: "去支付",
    scan: "请使用手机扫码支付",
    sandbox_pay: "测试环境：在沙箱中支付",
    amount: "金额",
    plan: "套餐",
    order_number: "订单号",
    expires_in: "剩余支付时间",
    loading: "正在加载…",
    waiting: "等待支付…",
    paid: "支付成功",
    member_until: "会员有效期至",
    back_to_shop: "返回商户",
    expired: "二维码已过期",
    failed: "支付未完成",
    retry: "获取新的二维码",
    cancel: "取消支付",
    gone: "此支付链接无效或已过期，请返回商户重新发起。",
    error: "出了点问题，请稍后重试。",
    other_language: "English",
    other_language_tag: "en",
    details: "订单详情",
};

const EN: Strings = Strings {
    title: "Checkout",
    choose_plan: "Choose a plan",
    choose_channel: "Pay with",
    alipay: "Alipay",
    wechat: "WeChat Pay",
    tier_free: "Free",
    tier_pro: "Pro",
    tier_enterprise: "Enterprise",
    monthly: "per month",
    yearly: "per year",
    every_months: "every {n} months",
    for_days: "for {n} days",
    pay: "Pay",
    scan: "Scan the code with your phone to pay",
    sandbox_pay: "Test mode: pay in the sandbox",
    amount: "Amount",
    plan: "Plan",
    order_number: "Order number",
    expires_in: "Time left to pay",
    loading: "Loading…",
    waiting: "Waiting for payment…",
    paid: "Payment received",
    member_until: "Your membership is active until",
    back_to_shop: "Return to the shop",
    expired: "This code has expired",
    failed: "The payment did not go through",
    retry: "Get a new code",
    cancel: "Cancel",
    gone: "This checkout link is not valid or has expired; please start again from the shop.",
    error: "Something went wrong; please try again.",
    other_language: "中文",
    other_language_tag: "zh-CN",
    details: "Order details",
};

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = value.parse() {
            headers.insert(ACCEPT_LANGUAGE, value);
        }
        headers
    }

    #[test]
    fn chinese_unless_english_is_asked_for() {
        assert_eq!(Lang::choose(None, &HeaderMap::new()), Lang::Zh);
        assert_eq!(Lang::choose(None, &with_header("fr-FR, de")), Lang::Zh);
        assert_eq!(Lang::choose(None, &with_header("en-US,en;q=0.9")), Lang::En);
        assert_eq!(
            Lang::choose(None, &with_header("zh-CN;q=0.5, en;q=0.8")),
            Lang::En
        );
        assert_eq!(
            Lang::choose(None, &with_header("zh-CN, en;q=0.9")),
            Lang::Zh
        );
        assert_eq!(Lang::choose(Some("en"), &with_header("zh-CN")), Lang::En);
        assert_eq!(Lang::choose(Some("zh-CN"), &with_header("en")), Lang::Zh);
        assert_eq!(Lang::choose(Some("xx"), &with_header("en;q=0")), Lang::Zh);
    }
}
