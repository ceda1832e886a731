//! One table, three renderings: Markdown, HTML (optionally sortable by any column) and CSV.
//! The evaluation summary and the sweep comparison are built as a [`Table`] once and
//! rendered into each format, so the formats cannot disagree.

use std::fmt::Write as _;

/// A cell: the text shown and, for numeric columns, the value a sort uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// What the table shows.
    pub text: String,
    /// Sort key (and the CSV value when `csv` is absent).
    pub value: Option<f64>,
    /// The CSV rendering, when it differs from `text` (e.g. `mean,std` columns).
    pub csv: Option<Vec<String>>,
}

impl Cell {
    /// A text cell.
    pub fn text(s: impl Into<String>) -> Self {
        Self {
            text: s.into(),
            value: None,
            csv: None,
        }
    }

    /// A number shown with `decimals` digits.
    pub fn num(v: f64, decimals: usize) -> Self {
        Self {
            text: format!("{v:.decimals$}"),
            value: Some(v),
            csv: None,
        }
    }

    /// An absent value (`—`).
    pub fn none() -> Self {
        Self::text("—")
    }
}

/// A column header; `csv` names the CSV columns the header expands to (default: the header).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Header text.
    pub name: String,
    /// Right-aligned (numbers).
    pub numeric: bool,
    /// CSV column names, when a cell renders into several CSV columns.
    pub csv: Option<Vec<String>>,
}

impl Column {
    /// A text column.
    pub fn text(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            numeric: false,
            csv: None,
        }
    }

    /// A numeric column.
    pub fn num(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            numeric: true,
            csv: None,
        }
    }

    /// A numeric column whose cells expand to several CSV columns.
    pub fn num_csv(name: impl Into<String>, csv: &[&str]) -> Self {
        Self {
            name: name.into(),
            numeric: true,
            csv: Some(csv.iter().map(|s| s.to_string()).collect()),
        }
    }
}

/// A table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// Columns.
    pub columns: Vec<Column>,
    /// Rows, one cell per column.
    pub rows: Vec<Vec<Cell>>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Table {
    /// Markdown (GitHub pipe table).
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let head: Vec<String> = self.columns.iter().map(|c| c.name.clone()).collect();
        let _ = writeln!(s, "| {} |", head.join(" | "));
        let rule: Vec<&str> = self
            .columns
            .iter()
            .map(|c| if c.numeric { "---:" } else { "---" })
            .collect();
        let _ = writeln!(s, "|{}|", rule.join("|"));
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(|c| c.text.replace('|', "\\|")).collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        s
    }

    /// An HTML table; `sortable` adds a click-to-sort header (a few lines of inline script,
    /// numeric columns sort by value).
    pub fn to_html(&self, id: &str, sortable: bool) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "<table id=\"{}\" class=\"{}\"><thead><tr>",
            esc(id),
            if sortable { "sortable" } else { "plain" }
        );
        for (i, c) in self.columns.iter().enumerate() {
            let _ = write!(
                s,
                "<th data-col=\"{i}\" data-numeric=\"{}\"{}>{}</th>",
                c.numeric,
                if sortable {
                    " title=\"click to sort\""
                } else {
                    ""
                },
                esc(&c.name)
            );
        }
        s.push_str("</tr></thead><tbody>");
        for r in &self.rows {
            s.push_str("<tr>");
            for (c, col) in r.iter().zip(&self.columns) {
                let value = c
                    .value
                    .map(|v| format!(" data-value=\"{v}\""))
                    .unwrap_or_default();
                let _ = write!(
                    s,
                    "<td{}{}>{}</td>",
                    if col.numeric { " class=\"num\"" } else { "" },
                    value,
                    esc(&c.text)
                );
            }
            s.push_str("</tr>");
        }
        s.push_str("</tbody></table>\n");
        if sortable {
            let _ = writeln!(
                s,
                "<script>(function(){{var t=document.getElementById({id:?});\
                 t.querySelectorAll('th').forEach(function(th){{th.addEventListener('click',function(){{\
                 var i=+th.dataset.col,num=th.dataset.numeric==='true',asc=th.dataset.dir!=='asc';\
                 t.querySelectorAll('th').forEach(function(h){{delete h.dataset.dir;}});th.dataset.dir=asc?'asc':'desc';\
                 var b=t.tBodies[0],rows=Array.from(b.rows);rows.sort(function(x,y){{\
                 var a=x.cells[i],c=y.cells[i];var u=num?parseFloat(a.dataset.value):a.textContent,\
                 v=num?parseFloat(c.dataset.value):c.textContent;if(num){{if(isNaN(u))u=-Infinity;if(isNaN(v))v=-Infinity;}}\
                 return (u<v?-1:u>v?1:0)*(asc?1:-1);}});rows.forEach(function(r){{b.appendChild(r);}});}});}});}})();</script>"
            );
        }
        s
    }

    /// CSV (RFC 4180 quoting); cells of a column with `csv` names expand to those columns.
    pub fn to_csv(&self) -> String {
        let mut s = String::new();
        let head: Vec<String> = self
            .columns
            .iter()
            .flat_map(|c| c.csv.clone().unwrap_or_else(|| vec![c.name.clone()]))
            .map(|h| csv_field(&h))
            .collect();
        let _ = writeln!(s, "{}", head.join(","));
        for r in &self.rows {
            let cells: Vec<String> = r
                .iter()
                .zip(&self.columns)
                .flat_map(|(c, col)| {
                    let width = col.csv.as_ref().map(Vec::len).unwrap_or(1);
                    match &c.csv {
                        Some(v) => v.clone(),
                        None => {
                            let one = match c.value {
                                Some(v) => format!("{v}"),
                                None if c.text == "—" => String::new(),
                                None => c.text.clone(),
                            };
                            let mut v = vec![one];
                            v.resize(width, String::new());
                            v
                        }
                    }
                })
                .map(|f| csv_field(&f))
                .collect();
            let _ = writeln!(s, "{}", cells.join(","));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        Table {
            columns: vec![
                Column::text("run"),
                Column::num_csv("AUROC", &["auroc_mean", "auroc_std"]),
                Column::num("rows"),
            ],
            rows: vec![
                vec![
                    Cell::text("a,b"),
                    Cell {
                        text: "0.9000 ± 0.0100".into(),
                        value: Some(0.9),
                        csv: Some(vec!["0.9".into(), "0.01".into()]),
                    },
                    Cell::num(12.0, 0),
                ],
                vec![Cell::text("c|d"), Cell::none(), Cell::num(3.0, 0)],
            ],
        }
    }

    #[test]
    fn markdown_html_and_csv_show_the_same_cells() {
        let t = sample();
        let md = t.to_markdown();
        assert!(md.contains("| a,b | 0.9000 ± 0.0100 | 12 |"), "{md}");
        assert!(md.contains("c\\|d"), "pipes are escaped: {md}");
        assert!(md.lines().nth(1).unwrap().contains("---:"));
        let html = t.to_html("t1", true);
        assert!(html.contains("<td class=\"num\" data-value=\"0.9\">0.9000 ± 0.0100</td>"));
        assert!(html.contains("<script>"));
        assert!(!t.to_html("t2", false).contains("<script>"));
        let csv = t.to_csv();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("run,auroc_mean,auroc_std,rows"));
        assert_eq!(lines.next(), Some("\"a,b\",0.9,0.01,12"));
        assert_eq!(lines.next(), Some("c|d,,,3"));
    }
}
