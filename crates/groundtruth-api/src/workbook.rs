//! Tables as an xlsx workbook: one sheet per table, a bold frozen header
//! row in the reader's language, numbers as numbers (a unit's office sums
//! and charts them in Excel or WPS), shares as percentages.

use axum::http::{header, HeaderMap};
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use crate::error::ApiError;

/// The media type of an xlsx workbook.
pub const MEDIA_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The workbook's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// `lang` when given (`zh`/`en`), else the first of `Accept-Language`
    /// that is one of them, else Chinese.
    pub fn of(lang: Option<&str>, headers: &HeaderMap) -> Lang {
        let pick = |s: &str| {
            let s = s.trim().to_ascii_lowercase();
            if s.starts_with("en") {
                Some(Lang::En)
            } else if s.starts_with("zh") {
                Some(Lang::Zh)
            } else {
                None
            }
        };
        if let Some(l) = lang.and_then(pick) {
            return l;
        }
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').find_map(|part| pick(part.split(';').next()?)))
            .unwrap_or(Lang::Zh)
    }

    pub fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

fn failed(e: XlsxError) -> ApiError {
    tracing::error!(error = %e, "cannot write a workbook");
    ApiError::Internal("writing the workbook failed; the details are in the server log".into())
}

/// A cell of a sheet.
pub enum Cell<'a> {
    Text(&'a str),
    /// Text made for the cell (a value formatted from a query's result).
    Owned(String),
    Int(i64),
    /// One decimal shown.
    Num(f64),
    /// As many decimals as it has (Excel's General).
    Float(f64),
    Share(f64),
    Empty,
}

fn sheet(ws: &mut Worksheet, header: &[&str], rows: &[Vec<Cell<'_>>]) -> Result<(), XlsxError> {
    let bold = Format::new().set_bold();
    let share = Format::new().set_num_format("0.0%");
    let one = Format::new().set_num_format("0.0");
    for (c, h) in header.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *h, &bold)?;
        ws.set_column_width(c as u16, (h.chars().count() as f64 * 2.0).max(12.0))?;
    }
    for (r, row) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        for (c, cell) in row.iter().enumerate() {
            let c = c as u16;
            match cell {
                Cell::Text(s) => ws.write_string(r, c, *s).map(|_| ())?,
                Cell::Owned(s) => ws.write_string(r, c, s).map(|_| ())?,
                Cell::Int(i) => ws.write_number(r, c, *i as f64).map(|_| ())?,
                Cell::Float(x) => ws.write_number(r, c, *x).map(|_| ())?,
                Cell::Empty => {}
                Cell::Num(x) => ws.write_number_with_format(r, c, *x, &one).map(|_| ())?,
                Cell::Share(x) => ws.write_number_with_format(r, c, *x, &share).map(|_| ())?,
            }
        }
    }
    ws.set_freeze_panes(1, 0)?;
    Ok(())
}

/// One sheet: its name, the header row, the rows.
pub struct Sheet<'a> {
    pub name: &'static str,
    pub header: Vec<&'a str>,
    pub rows: Vec<Vec<Cell<'a>>>,
}

/// `sheets` as xlsx bytes.
pub fn xlsx(sheets: &[Sheet<'_>]) -> Result<Vec<u8>, ApiError> {
    build(sheets).map_err(failed)
}

fn build(sheets: &[Sheet<'_>]) -> Result<Vec<u8>, XlsxError> {
    let mut wb = Workbook::new();
    for s in sheets {
        sheet(wb.add_worksheet().set_name(s.name)?, &s.header, &s.rows)?;
    }
    wb.save_to_buffer()
}
