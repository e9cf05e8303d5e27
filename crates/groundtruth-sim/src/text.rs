//! Reports' summary texts: places, templates, and the text of a (template,
//! place, figure) triple. Honest reports draw their own; an inflating unit
//! repeats a few.

/// Places a report's text names.
pub(crate) const PLACES: &[&str] = &[
    "东街",
    "西村",
    "南门市场",
    "北岸小区",
    "河口组",
    "桥头",
    "新村小区",
    "老粮站",
    "学校旁",
    "幸福里",
    "三队",
    "滨江路",
    "工业园",
    "菜市场",
    "卫生院旁",
    "文化广场",
];

/// Report texts: `{p}` a place, `{c}` the category, `{n}` a figure.
pub(crate) const TEMPLATES: &[&str] = &[
    "{p}{n}号住户反映{c}问题，已上门了解情况。",
    "{p}群众来电，涉及{c}，约{n}人，已登记跟进。",
    "网格巡查发现{p}存在{c}隐患，已通知责任单位处理。",
    "{p}两户因{c}发生争执，现场劝解后暂平息。",
    "{p}居民求助：{c}，涉及金额约{n}百元，已转交相关部门。",
    "{p}附近{c}情况复查，较上次有所改善，继续跟踪。",
];

/// A report's summary text from its (template, place, figure).
pub(crate) fn summary(t: u8, p: u8, n: u16, category: &str) -> String {
    TEMPLATES[t as usize % TEMPLATES.len()]
        .replace("{p}", PLACES[p as usize % PLACES.len()])
        .replace("{c}", category)
        .replace("{n}", &n.to_string())
}
