//! Long tables drawn line by line, exactly as comfy-table draws them.
//!
//! comfy-table keeps every cell as its own lines of `String`s and then draws the
//! whole table into more of them: for the file list of a 100,000-file vault that
//! was ~2 KB per row, a client peaking at 264 MB, and a third of `ls`'s time
//! (0.34 of 0.86 s). A table whose cells are all single lines and whose natural
//! width fits where it is shown needs none of that: each column is as wide as its
//! widest cell, and each row is one line. [`draw`] draws those tables straight
//! into one `String` and leaves the rest (a cell with a line break or a control
//! character, a table that must wrap to fit a terminal) to comfy-table, which
//! the tests below hold it to: the same input gives the same bytes.

use std::borrow::Cow;
use std::fmt::Write as _;

use comfy_table::Table;
use unicode_width::UnicodeWidthStr;

/// How cells sit in their column (comfy-table's left and right).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// The `UTF8_FULL` preset's pieces, by where they go.
struct Pieces {
    left: char,
    fill: char,
    cross: char,
    right: char,
}

impl Pieces {
    const fn new(left: char, fill: char, cross: char, right: char) -> Self {
        Self {
            left,
            fill,
            cross,
            right,
        }
    }
}

const TOP: Pieces = Pieces::new('┌', '─', '┬', '┐');
const UNDER_HEADER: Pieces = Pieces::new('╞', '═', '╪', '╡');
const BETWEEN_ROWS: Pieces = Pieces::new('├', '╌', '┼', '┤');
const BOTTOM: Pieces = Pieces::new('└', '─', '┴', '┘');
const OUTER: char = '│';
const INNER: char = '┆';

/// Draws `rows` under `header` as comfy-table's `UTF8_FULL` would with no
/// wrapping, or returns `None` when the table needs what only comfy-table does:
/// a cell of several lines or with control characters, no rows, or more width
/// than `max_width` (the terminal's, when wrapping to it).
pub fn draw<const N: usize>(
    header: [&str; N],
    align: [Align; N],
    rows: &[[Cow<'_, str>; N]],
    max_width: Option<usize>,
) -> Option<String> {
    if rows.is_empty() {
        return None;
    }
    let mut widths = header.map(UnicodeWidthStr::width);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            if cell.chars().any(char::is_control) {
                return None;
            }
            *width = (*width).max(cell.width());
        }
    }
    // Each column pads its cells with a space on both sides; N + 1 borders.
    let total = widths.iter().map(|w| w + 2).sum::<usize>() + N + 1;
    if max_width.is_some_and(|max| total > max) {
        return None;
    }
    let mut out = String::with_capacity((rows.len() * 2 + 3) * (total + 2 * N + 8));
    rule(&mut out, &TOP, &widths);
    line(&mut out, &header, &align, &widths);
    rule(&mut out, &UNDER_HEADER, &widths);
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            rule(&mut out, &BETWEEN_ROWS, &widths);
        }
        line(&mut out, row, &align, &widths);
    }
    rule(&mut out, &BOTTOM, &widths);
    out.pop(); // comfy-table ends without a line break
    Some(out)
}

fn rule(out: &mut String, pieces: &Pieces, widths: &[usize]) {
    out.push(pieces.left);
    for (i, width) in widths.iter().enumerate() {
        if i > 0 {
            out.push(pieces.cross);
        }
        out.extend(std::iter::repeat_n(pieces.fill, width + 2));
    }
    out.push(pieces.right);
    out.push('\n');
}

fn line<S: AsRef<str>>(out: &mut String, cells: &[S], align: &[Align], widths: &[usize]) {
    out.push(OUTER);
    for (i, ((cell, align), width)) in cells.iter().zip(align).zip(widths).enumerate() {
        if i > 0 {
            out.push(INNER);
        }
        let cell = cell.as_ref();
        let pad = width - cell.width();
        // Writing into a String cannot fail.
        let _ = match align {
            Align::Left => write!(out, " {cell}{:pad$} ", ""),
            Align::Right => write!(out, " {:pad$}{cell} ", ""),
        };
    }
    out.push(OUTER);
    out.push('\n');
}

/// The width comfy-table would wrap a new table to here: the terminal's when the
/// output is one, else none.
pub fn terminal_width() -> Option<usize> {
    Table::new().width().map(usize::from)
}

#[cfg(test)]
mod tests {
    use comfy_table::presets::UTF8_FULL;
    use comfy_table::{CellAlignment, ContentArrangement};
    use proptest::prelude::*;

    use super::*;

    fn comfy<const N: usize>(
        header: [&str; N],
        align: [Align; N],
        rows: &[[Cow<'_, str>; N]],
        width: Option<u16>,
    ) -> String {
        let mut table = Table::new();
        table.load_style(UTF8_FULL).set_header(header.to_vec());
        match width {
            Some(width) => {
                table.set_width(width);
                table.set_content_arrangement(ContentArrangement::Dynamic);
            }
            None => {
                table.set_content_arrangement(ContentArrangement::Disabled);
            }
        }
        for row in rows {
            table.add_row(row.iter().map(|c| c.to_string()).collect::<Vec<_>>());
        }
        for (i, a) in align.iter().enumerate() {
            if *a == Align::Right
                && let Some(col) = table.column_mut(i)
            {
                col.set_cell_alignment(CellAlignment::Right);
            }
        }
        table.to_string()
    }

    const HEADER: [&str; 3] = ["Filename", "Size (bytes)", "Here"];
    const ALIGN: [Align; 3] = [Align::Left, Align::Right, Align::Left];

    fn rows(cells: Vec<(String, u64, bool)>) -> Vec<[Cow<'static, str>; 3]> {
        cells
            .into_iter()
            .map(|(name, size, here)| {
                [
                    Cow::Owned(name),
                    Cow::Owned(size.to_string()),
                    Cow::Borrowed(if here { "yes" } else { "no" }),
                ]
            })
            .collect()
    }

    /// Names as people write them: ASCII, spaces at either end, accents,
    /// combining marks, CJK and emoji (two columns each), zero-width joiners.
    fn name() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "a",
                "Z",
                "0",
                "-",
                ".",
                " ",
                "é",
                "e\u{301}",
                "日本",
                "語",
                "🦀",
                "👩\u{200d}💻",
                "ß",
                "Ω",
                "\u{200b}",
            ]),
            0..12,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn draws_what_comfy_table_draws(
            cells in prop::collection::vec((name(), any::<u64>(), any::<bool>()), 1..8)
        ) {
            let rows = rows(cells);
            let ours = draw(HEADER, ALIGN, &rows, None).expect("single-line cells");
            prop_assert_eq!(ours, comfy(HEADER, ALIGN, &rows, None));
        }

        #[test]
        fn a_table_that_fits_a_terminal_is_drawn_as_comfy_table_wraps_it(
            cells in prop::collection::vec((name(), any::<u64>(), any::<bool>()), 1..8),
            width in 20u16..120,
        ) {
            let rows = rows(cells);
            match draw(HEADER, ALIGN, &rows, Some(usize::from(width))) {
                Some(ours) => prop_assert_eq!(ours, comfy(HEADER, ALIGN, &rows, Some(width))),
                // Too wide: comfy-table wraps it (and the caller asks it to).
                None => prop_assert!(comfy(HEADER, ALIGN, &rows, None)
                    .lines()
                    .any(|l| l.width() > usize::from(width))),
            }
        }
    }

    #[test]
    fn leaves_to_comfy_table_what_only_it_draws() {
        let multi = rows(vec![("two\nlines".into(), 1, true)]);
        assert_eq!(draw(HEADER, ALIGN, &multi, None), None);
        let escape = rows(vec![("\u{1b}[31mred".into(), 1, true)]);
        assert_eq!(draw(HEADER, ALIGN, &escape, None), None);
        assert_eq!(draw(HEADER, ALIGN, &[], None), None);
        let wide = rows(vec![("x".repeat(100), 1, true)]);
        assert_eq!(draw(HEADER, ALIGN, &wide, Some(80)), None);
        assert!(draw(HEADER, ALIGN, &wide, Some(200)).is_some());
    }
}
