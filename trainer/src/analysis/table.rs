//! Tables printed aligned on the terminal and written as CSV from the same rows: numbers keep
//! full precision in the CSV and a column's precision on the terminal.

use crate::model::write_atomic;
use anyhow::Result;
use std::path::Path;

/// One column: its terminal title, its CSV name, and the decimals shown on the terminal.
#[derive(Clone, Debug)]
pub struct Column {
    pub title: String,
    pub csv: String,
    pub decimals: usize,
}

/// A column of text or integers (`decimals` unused).
pub fn col(title: &str, csv: &str) -> Column {
    Column {
        title: title.into(),
        csv: csv.into(),
        decimals: 0,
    }
}

/// A column of floats shown with `decimals` places.
pub fn num(title: &str, csv: &str, decimals: usize) -> Column {
    Column {
        title: title.into(),
        csv: csv.into(),
        decimals,
    }
}

/// One value.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Text(String),
    Int(u64),
    Num(f64),
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.into())
    }
}
impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}
impl From<u64> for Cell {
    fn from(v: u64) -> Cell {
        Cell::Int(v)
    }
}
impl From<usize> for Cell {
    fn from(v: usize) -> Cell {
        Cell::Int(v as u64)
    }
}
impl From<f64> for Cell {
    fn from(v: f64) -> Cell {
        Cell::Num(v)
    }
}
impl From<f32> for Cell {
    fn from(v: f32) -> Cell {
        Cell::Num(v as f64)
    }
}

/// Rows under columns.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Table {
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// The table aligned for a terminal: text left, numbers right, two spaces between columns.
    pub fn render(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&self.columns)
                    .map(|(c, col)| match c {
                        Cell::Text(s) => s.clone(),
                        Cell::Int(v) => v.to_string(),
                        Cell::Num(v) => format!("{v:.*}", col.decimals),
                    })
                    .collect()
            })
            .collect();
        let width = |i: usize| {
            let t = self.columns[i].title.chars().count();
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .fold(t, usize::max)
        };
        let widths: Vec<usize> = (0..self.columns.len()).map(width).collect();
        let left = |i: usize| {
            self.rows
                .first()
                .is_some_and(|r| matches!(r[i], Cell::Text(_)))
        };
        let line = |vals: &[String]| {
            let parts: Vec<String> = vals
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let pad = widths[i].saturating_sub(v.chars().count());
                    if left(i) {
                        format!("{v}{}", " ".repeat(pad))
                    } else {
                        format!("{}{v}", " ".repeat(pad))
                    }
                })
                .collect();
            parts.join("  ").trim_end().to_string()
        };
        let mut out = line(
            &self
                .columns
                .iter()
                .map(|c| c.title.clone())
                .collect::<Vec<_>>(),
        );
        out.push('\n');
        for r in &cells {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }

    /// The table as CSV: a header of the columns' CSV names, numbers in full precision.
    pub fn csv(&self) -> String {
        let mut out = self
            .columns
            .iter()
            .map(|c| csv_field(&c.csv))
            .collect::<Vec<_>>()
            .join(",");
        out.push('\n');
        for r in &self.rows {
            let vals: Vec<String> = r
                .iter()
                .map(|c| match c {
                    Cell::Text(s) => csv_field(s),
                    Cell::Int(v) => v.to_string(),
                    Cell::Num(v) => format!("{v}"),
                })
                .collect();
            out.push_str(&vals.join(","));
            out.push('\n');
        }
        out
    }

    pub fn write_csv(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.csv().as_bytes())
    }
}
