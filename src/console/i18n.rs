//! Every string the console shows, in one catalogue of two tables (zh-CN, the default,
//! and English), and how a request's language is chosen: `?lang=` (then remembered in
//! a cookie), else that cookie, else the browser's Accept-Language, else zh-CN.
//! Engine messages (the detail after a refusal's phrase) stay as the engine words them.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::{header, HeaderMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// A language tag as written in `?lang=`, a cookie or Accept-Language.
    pub fn parse(s: &str) -> Option<Lang> {
        let s = s.trim().to_ascii_lowercase();
        let primary = s.split(['-', '_']).next().unwrap_or("");
        match primary {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn t(self, key: &str) -> &'static str {
        t(self, key)
    }
}

/// `lang=` in a query string.
pub fn lang_in_query(query: &str) -> Option<Lang> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == "lang")
        .and_then(|(_, v)| Lang::parse(v))
}

/// The cookie's language, else the browser's first known one by weight, else zh-CN.
pub fn negotiate(headers: &HeaderMap) -> Lang {
    if let Some(l) = super::session::cookie(headers, super::session::LANG_COOKIE).and_then(Lang::parse) {
        return l;
    }
    let Some(accept) = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()) else {
        return Lang::default();
    };
    let mut best: Option<(u32, Lang)> = None;
    for part in accept.split(',') {
        let mut it = part.split(';');
        let tag = it.next().unwrap_or("");
        // q in thousandths, integers only.
        let q = it
            .find_map(|p| p.trim().strip_prefix("q="))
            .map(|q| {
                let (int, frac) = q.split_once('.').unwrap_or((q, ""));
                let frac: String = frac.chars().chain("000".chars()).take(3).collect();
                int.parse::<u32>().unwrap_or(0).min(1) * 1000 + frac.parse::<u32>().unwrap_or(0)
            })
            .unwrap_or(1000);
        if let Some(l) = Lang::parse(tag) {
            if q > 0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, l));
            }
        }
    }
    best.map(|(_, l)| l).unwrap_or_default()
}

/// Percent-encoding of a query value or path segment (everything but unreserved).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn table(lang: Lang) -> &'static HashMap<&'static str, &'static str> {
    static ZH_MAP: OnceLock<HashMap<&str, &str>> = OnceLock::new();
    static EN_MAP: OnceLock<HashMap<&str, &str>> = OnceLock::new();
    match lang {
        Lang::Zh => ZH_MAP.get_or_init(|| ZH.iter().copied().collect()),
        Lang::En => EN_MAP.get_or_init(|| EN.iter().copied().collect()),
    }
}

pub fn lookup(lang: Lang, key: &str) -> Option<&'static str> {
    table(lang).get(key).copied()
}

/// The text of `key`; a key missing from the catalogue shows as itself (the tests make
/// sure none is).
pub fn t(lang: Lang, key: &str) -> &'static str {
    match lookup(lang, key) {
        Some(s) => s,
        None => {
            tracing::warn!("console: no text for {key:?}");
            "?"
        }
    }
}

pub const ZH: &[(&str, &str)] = &[
    ("face.terminal", "门店终端"),
    ("face.hub", "总部"),
    ("nav.skip", "跳到正文"),
    ("nav.label", "主菜单"),
    ("nav.dashboard", "概览"),
    ("nav.members", "会员"),
    ("nav.campaigns", "营销活动"),
    ("nav.reports", "报表"),
    ("nav.staff", "员工"),
    ("nav.terminals", "终端"),
    ("nav.conflicts", "冲突"),
    ("nav.logout", "退出"),
    ("role.cashier", "收银员"),
    ("role.manager", "店长"),
    ("role.owner", "店主"),
    ("role.operator", "总部管理员"),
    ("role.none", "未登录"),
    ("title.login", "登录"),
    ("title.dashboard", "概览"),
    ("title.members", "会员"),
    ("title.member", "会员详情"),
    ("title.reports", "报表"),
    ("title.campaigns", "营销活动"),
    ("title.staff", "员工"),
    ("title.terminals", "终端"),
    ("title.conflicts", "冲突"),
    ("title.error", "出错了"),
    ("error.home", "返回首页"),
    ("login.staff_id", "员工编号"),
    ("login.password", "密码"),
    ("login.submit", "登录"),
    ("login.hub_hint", "总部管理员：员工编号填 operator，密码为管理员令牌。"),
    ("window.label", "时间范围"),
    ("window.from", "开始日期"),
    ("window.to", "结束日期"),
    ("window.show", "查看"),
    ("dash.figures", "主要指标"),
    ("dash.charts", "图表"),
    ("fig.sales", "销售额"),
    ("fig.transactions", "交易笔数"),
    ("fig.new_members", "新会员"),
    ("fig.active_members", "活跃会员"),
    ("fig.repeat_members", "复购会员"),
    ("fig.repurchase_rate", "复购率"),
    ("fig.points_issued", "发放积分"),
    ("fig.points_clawed_back", "扣回积分"),
    ("fig.points_redeemed", "兑换积分"),
    ("fig.points_expired", "过期积分"),
    ("fig.points_outstanding", "未使用积分"),
    ("fig.liability", "积分负债"),
    ("fig.tier", "等级"),
    ("chart.sales", "每日销售额"),
    ("chart.members", "新会员与活跃会员"),
    ("chart.rate", "每月复购率"),
    ("chart.tiers", "会员等级分布"),
    ("chart.points", "积分发放、兑换与过期"),
    ("chart.retention", "留存热力图"),
    ("members.q", "手机号、姓名、卡号或尾号"),
    ("members.search", "搜索"),
    (
        "members.hint",
        "完整手机号精确查找；姓名前缀、手机尾号（4 位以上）或卡号前缀模糊查找。",
    ),
    ("members.none", "没有找到会员。"),
    ("member.id", "会员编号"),
    ("member.name", "姓名"),
    ("member.phone", "手机号"),
    ("member.cards", "会员卡"),
    ("member.tier", "等级"),
    ("member.balance", "积分余额"),
    ("member.status", "状态"),
    ("member.birthday", "生日"),
    ("member.tags", "标签"),
    ("member.visits", "到店次数"),
    ("member.enrolled", "入会"),
    ("member.edit", "修改资料"),
    ("member.adjust", "调整积分"),
    ("member.points", "积分（可为负数）"),
    ("member.reason", "原因"),
    ("member.adjust_submit", "调整"),
    ("member.pin_reset", "重置支付密码"),
    ("member.new_pin", "新密码"),
    ("member.pin_submit", "重置"),
    ("member.ledger", "积分明细"),
    ("member.history", "消费记录"),
    ("member.coupons", "优惠券"),
    ("status.active", "正常"),
    ("status.inactive", "停用"),
    ("approval.legend", "店长授权（收银员操作时需要）"),
    ("approval.staff_id", "店长编号"),
    ("approval.password", "店长密码"),
    ("form.save", "保存"),
    ("pager.next", "下一页"),
    ("col.at", "时间"),
    ("col.kind", "类型"),
    ("col.points", "积分"),
    ("col.balance_after", "余额"),
    ("col.reason", "说明"),
    ("col.by", "操作人"),
    ("col.tx", "交易号"),
    ("col.total", "金额"),
    ("col.earned", "获得积分"),
    ("col.redeemed", "使用积分"),
    ("col.refunded", "已退款"),
    ("col.terminal", "终端"),
    ("col.code", "券码"),
    ("col.type", "券类型"),
    ("col.valid_until", "有效期至"),
    ("col.state", "状态"),
    ("col.issued_by", "来源"),
    ("col.month", "入会月份"),
    ("col.members", "人数"),
    ("col.active_by_month", "此后每月活跃人数"),
    ("col.id", "编号"),
    ("col.what", "规则"),
    ("done.edit", "资料已保存。"),
    ("done.status", "状态已更新。"),
    ("done.pin", "支付密码已重置。"),
    ("done.points", "积分已调整。"),
    ("done.published", "已发布规则版本"),
    ("done.other", "已完成。"),
    ("reports.rfrom", "留存起始月"),
    ("reports.rto", "留存结束月"),
    ("reports.summary", "汇总"),
    ("reports.retention", "会员留存"),
    ("reports.csv", "下载 CSV"),
    ("reports.no_cohorts", "该时间段没有新入会会员。"),
    ("reports.campaigns", "活动效果"),
    ("reports.no_campaigns", "此期间没有活动产生效果。"),
    ("col.uses", "使用次数"),
    ("col.discount", "优惠金额"),
    ("col.bonus_points", "额外积分"),
    ("col.sales", "销售额"),
    ("kind.promotion", "促销"),
    ("kind.coupon", "优惠券"),
    ("kind.campaign", "积分活动"),
    ("kind.group_buy", "团购"),
    ("kind.trigger", "触发券"),
    ("campaigns.version", "当前规则版本"),
    ("campaigns.promotions", "促销"),
    ("campaigns.coupons", "优惠券类型"),
    ("campaigns.activities", "积分活动"),
    ("campaigns.triggers", "自动发券"),
    ("campaigns.group_buys", "团购"),
    ("campaigns.campaigns", "积分加倍活动"),
    ("campaigns.none", "无"),
    ("campaigns.publish", "编辑并发布规则"),
    ("campaigns.ruleset", "规则（TOML）"),
    (
        "campaigns.publish_hint",
        "版本号必须大于已发布的版本；各终端在下次同步时启用。",
    ),
    ("campaigns.publish_submit", "校验并发布"),
    ("staff.id", "员工编号"),
    ("staff.name", "姓名"),
    ("staff.role", "角色"),
    ("staff.state", "状态"),
    ("staff.actions", "操作"),
    ("staff.enabled", "在职"),
    ("staff.disabled", "已停用"),
    ("staff.disable", "停用"),
    ("staff.new_password", "新密码"),
    ("staff.set_password", "改密码"),
    ("staff.add", "新增员工"),
    ("staff.add_submit", "新增"),
    ("terminals.id", "终端"),
    ("terminals.epoch", "安装批次"),
    ("terminals.acked", "已确认记录号"),
    ("terminals.records", "记录数"),
    ("terminals.duplicates", "重复"),
    ("terminals.skipped", "未能应用"),
    ("terminals.untrusted", "时钟不可信的记录"),
    ("terminals.last_contact", "最近联系"),
    ("terminals.behind", "待拉取"),
    ("terminals.never", "从未"),
    ("terminals.never_pulled", "未拉取过"),
    ("terminals.none", "还没有终端同步过。"),
    (
        "terminals.hint",
        "已确认记录号之后的记录仍在终端待上传；待拉取：终端上次拉取之后中心新增的变更条目。",
    ),
    ("conflicts.id", "编号"),
    ("conflicts.kind", "类型"),
    ("conflicts.value", "卡号/手机号"),
    ("conflicts.detected", "发现时间"),
    ("conflicts.members", "会员"),
    ("conflicts.resolve", "处理"),
    ("conflicts.keep", "保留"),
    ("conflicts.merge", "合并其他会员"),
    ("conflicts.resolve_submit", "处理"),
    ("conflicts.resolved", "已处理"),
    ("conflicts.none", "没有待处理的冲突。"),
    ("err.other", "操作失败"),
    ("err.invalid_input", "输入有误"),
    ("err.invalid_card", "卡号无效"),
    ("err.unknown_card", "没有这张卡"),
    ("err.unknown_member", "没有这个会员"),
    ("err.phone_taken", "手机号已被占用"),
    ("err.member_exists", "已存在"),
    ("err.insufficient_points", "积分不足"),
    ("err.forbidden", "没有权限"),
    ("err.unauthorized", "员工编号或密码错误"),
    ("err.staff_locked", "账号已锁定"),
    ("err.not_found", "找不到"),
    ("err.pin_locked", "支付密码已锁定"),
    ("err.store_busy", "系统繁忙"),
    ("err.internal", "内部错误"),
];

pub const EN: &[(&str, &str)] = &[
    ("face.terminal", "shop terminal"),
    ("face.hub", "hub"),
    ("nav.skip", "Skip to content"),
    ("nav.label", "Main"),
    ("nav.dashboard", "Dashboard"),
    ("nav.members", "Members"),
    ("nav.campaigns", "Campaigns"),
    ("nav.reports", "Reports"),
    ("nav.staff", "Staff"),
    ("nav.terminals", "Terminals"),
    ("nav.conflicts", "Conflicts"),
    ("nav.logout", "Log out"),
    ("role.cashier", "cashier"),
    ("role.manager", "manager"),
    ("role.owner", "owner"),
    ("role.operator", "hub operator"),
    ("role.none", "not signed in"),
    ("title.login", "Log in"),
    ("title.dashboard", "Dashboard"),
    ("title.members", "Members"),
    ("title.member", "Member"),
    ("title.reports", "Reports"),
    ("title.campaigns", "Campaigns"),
    ("title.staff", "Staff"),
    ("title.terminals", "Terminals"),
    ("title.conflicts", "Conflicts"),
    ("title.error", "Something went wrong"),
    ("error.home", "Back to the start"),
    ("login.staff_id", "Staff id"),
    ("login.password", "Password"),
    ("login.submit", "Log in"),
    (
        "login.hub_hint",
        "Hub operators: staff id operator, the operator token as password.",
    ),
    ("window.label", "Window"),
    ("window.from", "From"),
    ("window.to", "To"),
    ("window.show", "Show"),
    ("dash.figures", "Figures"),
    ("dash.charts", "Charts"),
    ("fig.sales", "Sales"),
    ("fig.transactions", "Transactions"),
    ("fig.new_members", "New members"),
    ("fig.active_members", "Active members"),
    ("fig.repeat_members", "Repeat members"),
    ("fig.repurchase_rate", "Repurchase rate"),
    ("fig.points_issued", "Points issued"),
    ("fig.points_clawed_back", "Points clawed back"),
    ("fig.points_redeemed", "Points redeemed"),
    ("fig.points_expired", "Points expired"),
    ("fig.points_outstanding", "Points outstanding"),
    ("fig.liability", "Liability"),
    ("fig.tier", "Tier"),
    ("chart.sales", "Sales by day"),
    ("chart.members", "New and active members"),
    ("chart.rate", "Repurchase rate by month"),
    ("chart.tiers", "Tier mix"),
    ("chart.points", "Points issued, redeemed and expired"),
    ("chart.retention", "Retention heat map"),
    ("members.q", "Phone, name, card or phone suffix"),
    ("members.search", "Search"),
    (
        "members.hint",
        "A whole phone number finds exactly; a name prefix, a phone suffix (4+ digits) or a card prefix searches.",
    ),
    ("members.none", "No member found."),
    ("member.id", "Member id"),
    ("member.name", "Name"),
    ("member.phone", "Phone"),
    ("member.cards", "Cards"),
    ("member.tier", "Tier"),
    ("member.balance", "Balance"),
    ("member.status", "Status"),
    ("member.birthday", "Birthday"),
    ("member.tags", "Tags"),
    ("member.visits", "Visits"),
    ("member.enrolled", "Enrolled"),
    ("member.edit", "Edit details"),
    ("member.adjust", "Adjust points"),
    ("member.points", "Points (may be negative)"),
    ("member.reason", "Reason"),
    ("member.adjust_submit", "Adjust"),
    ("member.pin_reset", "Reset PIN"),
    ("member.new_pin", "New PIN"),
    ("member.pin_submit", "Reset"),
    ("member.ledger", "Points ledger"),
    ("member.history", "Purchases"),
    ("member.coupons", "Coupons"),
    ("status.active", "active"),
    ("status.inactive", "inactive"),
    (
        "approval.legend",
        "Manager's approval (needed when a cashier does this)",
    ),
    ("approval.staff_id", "Manager's staff id"),
    ("approval.password", "Manager's password"),
    ("form.save", "Save"),
    ("pager.next", "Next page"),
    ("col.at", "At"),
    ("col.kind", "Kind"),
    ("col.points", "Points"),
    ("col.balance_after", "Balance"),
    ("col.reason", "Note"),
    ("col.by", "By"),
    ("col.tx", "Transaction"),
    ("col.total", "Total"),
    ("col.earned", "Earned"),
    ("col.redeemed", "Redeemed"),
    ("col.refunded", "Refunded"),
    ("col.terminal", "Terminal"),
    ("col.code", "Code"),
    ("col.type", "Type"),
    ("col.valid_until", "Valid until"),
    ("col.state", "State"),
    ("col.issued_by", "Issued by"),
    ("col.month", "Enrolled in"),
    ("col.members", "Members"),
    ("col.active_by_month", "Active in each month since"),
    ("col.id", "Id"),
    ("col.what", "Rule"),
    ("done.edit", "Details saved."),
    ("done.status", "Status changed."),
    ("done.pin", "PIN reset."),
    ("done.points", "Points adjusted."),
    ("done.published", "Published ruleset version"),
    ("done.other", "Done."),
    ("reports.rfrom", "Retention from month"),
    ("reports.rto", "Retention to month"),
    ("reports.summary", "Summary"),
    ("reports.retention", "Retention"),
    ("reports.csv", "Download CSV"),
    ("reports.no_cohorts", "Nobody enrolled in these months."),
    ("reports.campaigns", "Campaign effect"),
    ("reports.no_campaigns", "No campaign had an effect in this window."),
    ("col.uses", "Uses"),
    ("col.discount", "Discount"),
    ("col.bonus_points", "Bonus points"),
    ("col.sales", "Sales"),
    ("kind.promotion", "Promotion"),
    ("kind.coupon", "Coupon"),
    ("kind.campaign", "Points campaign"),
    ("kind.group_buy", "Group buy"),
    ("kind.trigger", "Trigger"),
    ("campaigns.version", "Ruleset version"),
    ("campaigns.promotions", "Promotions"),
    ("campaigns.coupons", "Coupon types"),
    ("campaigns.activities", "Activities"),
    ("campaigns.triggers", "Triggers"),
    ("campaigns.group_buys", "Group buys"),
    ("campaigns.campaigns", "Points campaigns"),
    ("campaigns.none", "None"),
    ("campaigns.publish", "Edit and publish the ruleset"),
    ("campaigns.ruleset", "Ruleset (TOML)"),
    (
        "campaigns.publish_hint",
        "The version must be above the published one; terminals use it after their next sync.",
    ),
    ("campaigns.publish_submit", "Check and publish"),
    ("staff.id", "Staff id"),
    ("staff.name", "Name"),
    ("staff.role", "Role"),
    ("staff.state", "State"),
    ("staff.actions", "Actions"),
    ("staff.enabled", "enabled"),
    ("staff.disabled", "disabled"),
    ("staff.disable", "Disable"),
    ("staff.new_password", "New password"),
    ("staff.set_password", "Set password"),
    ("staff.add", "Add a staff member"),
    ("staff.add_submit", "Add"),
    ("terminals.id", "Terminal"),
    ("terminals.epoch", "Install epoch"),
    ("terminals.acked", "Acknowledged seq"),
    ("terminals.records", "Records"),
    ("terminals.duplicates", "Duplicates"),
    ("terminals.skipped", "Not applied"),
    ("terminals.untrusted", "Records with an untrusted clock"),
    ("terminals.last_contact", "Last contact"),
    ("terminals.behind", "Not pulled yet"),
    ("terminals.never", "never"),
    ("terminals.never_pulled", "never pulled"),
    ("terminals.none", "No terminal has synced yet."),
    (
        "terminals.hint",
        "Records past the acknowledged seq are still in the terminal's outbox; not pulled yet: the hub's change-feed entries past the terminal's last pull.",
    ),
    ("conflicts.id", "Id"),
    ("conflicts.kind", "Kind"),
    ("conflicts.value", "Card or phone"),
    ("conflicts.detected", "Detected"),
    ("conflicts.members", "Members"),
    ("conflicts.resolve", "Resolve"),
    ("conflicts.keep", "Keep"),
    ("conflicts.merge", "Merge the others into it"),
    ("conflicts.resolve_submit", "Resolve"),
    ("conflicts.resolved", "resolved"),
    ("conflicts.none", "No conflict to resolve."),
    ("err.other", "Refused"),
    ("err.invalid_input", "Invalid input"),
    ("err.invalid_card", "Invalid card"),
    ("err.unknown_card", "Unknown card"),
    ("err.unknown_member", "No such member"),
    ("err.phone_taken", "Phone taken"),
    ("err.member_exists", "Exists already"),
    ("err.insufficient_points", "Not enough points"),
    ("err.forbidden", "Not allowed"),
    ("err.unauthorized", "Wrong staff id or password"),
    ("err.staff_locked", "Locked"),
    ("err.not_found", "Not found"),
    ("err.pin_locked", "PIN locked"),
    ("err.store_busy", "Busy"),
    ("err.internal", "Internal error"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn both_tables_have_the_same_keys_once_each() {
        let zh: BTreeSet<&str> = ZH.iter().map(|(k, _)| *k).collect();
        let en: BTreeSet<&str> = EN.iter().map(|(k, _)| *k).collect();
        assert_eq!(zh.len(), ZH.len(), "a key twice in zh");
        assert_eq!(en.len(), EN.len(), "a key twice in en");
        assert_eq!(zh.symmetric_difference(&en).collect::<Vec<_>>(), Vec::<&&str>::new());
        assert!(ZH.iter().chain(EN).all(|(_, v)| !v.trim().is_empty()));
    }

    /// Every key a template or a page names is in the catalogue.
    #[test]
    fn every_key_used_is_there() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut texts = Vec::new();
        for dir in ["templates/console", "src/console/pages", "src/console"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let p = entry.unwrap().path();
                if p.is_file() && p.file_name().is_some_and(|n| n != "i18n.rs") {
                    texts.push(std::fs::read_to_string(&p).unwrap());
                }
            }
        }
        let prefixes = [
            "face.",
            "nav.",
            "role.",
            "title.",
            "error.",
            "login.",
            "window.",
            "dash.",
            "fig.",
            "chart.",
            "members.",
            "member.",
            "status.",
            "approval.",
            "form.",
            "pager.",
            "col.",
            "done.",
            "reports.",
            "campaigns.",
            "staff.",
            "terminals.",
            "conflicts.",
            "err.",
        ];
        let mut used = BTreeSet::new();
        for text in &texts {
            for piece in text.split('"').skip(1).step_by(2) {
                if prefixes.iter().any(|p| piece.starts_with(p))
                    && piece.chars().all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
                {
                    used.insert(piece.to_string());
                }
            }
        }
        assert!(used.len() > 100, "found {} keys: the scan is broken", used.len());
        let missing: Vec<_> = used.iter().filter(|k| lookup(Lang::Zh, k).is_none()).collect();
        assert!(missing.is_empty(), "no text for {missing:?}");
    }

    #[test]
    fn the_language_is_chosen_as_asked() {
        let mut h = HeaderMap::new();
        assert_eq!(negotiate(&h), Lang::Zh);
        h.insert(
            header::ACCEPT_LANGUAGE,
            "fr;q=1, en-US;q=0.8, zh;q=0.5".parse().unwrap(),
        );
        assert_eq!(negotiate(&h), Lang::En);
        h.insert(header::ACCEPT_LANGUAGE, "zh-CN,zh;q=0.9,en;q=0.8".parse().unwrap());
        assert_eq!(negotiate(&h), Lang::Zh);
        h.insert(header::COOKIE, "loyaltyd_lang=en".parse().unwrap());
        assert_eq!(negotiate(&h), Lang::En);
        assert_eq!(lang_in_query("a=1&lang=zh-CN"), Some(Lang::Zh));
        assert_eq!(lang_in_query("lang=xx"), None);
        assert_eq!(url_encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
