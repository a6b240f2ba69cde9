//! Draws `weft top`'s screen with ratatui: a line naming the filter and the count, the
//! table with its sort column marked, and a line of keys (or the last source that closed).
//! Drawing only reads its input, so tests draw on ratatui's `TestBackend`.

use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::rows::{Column, RowView, Sort};

/// The widest a column gets before its text is cut; the path takes what is left.
const MAX_WIDTH: [u16; 11] = [32, 4, 24, 8, 0, 9, 8, 8, 8, 8, 8];

/// Everything one frame shows.
pub struct Screen<'a> {
    /// The filter in a line (`service=world rate=100/s`).
    pub filter: &'a str,
    /// Requests counted since the start.
    pub requests: u64,
    pub rows: &'a [RowView],
    pub sort: Sort,
    /// Why a source closed, shown in place of the keys until the next one.
    pub status: Option<&'a str>,
}

pub fn render(frame: &mut Frame, screen: &Screen) {
    let [top, table, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let title = format!(
        "weft top   {}   {} requests   {} rows",
        screen.filter,
        screen.requests,
        screen.rows.len()
    );
    frame.render_widget(
        Paragraph::new(title).style(Style::new().add_modifier(Modifier::BOLD)),
        top,
    );
    frame.render_widget(rows_table(screen), table);
    let footer = match screen.status {
        Some(s) => Line::from(s.to_string()).style(Style::new().add_modifier(Modifier::BOLD)),
        None => Line::from("←/→ or 1-9,0: sort column   r: reverse   q: quit".to_string())
            .style(Style::new().add_modifier(Modifier::DIM)),
    };
    frame.render_widget(Paragraph::new(footer), bottom);
}

fn rows_table(screen: &Screen) -> Table<'static> {
    let cells: Vec<[String; 11]> = screen.rows.iter().map(RowView::cells).collect();
    let header = Row::new(Column::ALL.map(|c| {
        let mut title = c.title().to_string();
        let mut style = Style::new().add_modifier(Modifier::BOLD);
        if c == screen.sort.column {
            // The arrow shows the order as it is: figures run largest first until reversed.
            let descending = c.is_figure() != screen.sort.reversed;
            title.push(if descending { '▼' } else { '▲' });
            style = style.add_modifier(Modifier::REVERSED);
        }
        align(c, title).style(style)
    }));
    let widths = Column::ALL.map(|c| {
        let i = c.index();
        if c == Column::Path {
            return Constraint::Fill(1);
        }
        let widest = cells
            .iter()
            .map(|r| r[i].chars().count())
            .chain([c.title().len() + 1])
            .max()
            .unwrap_or(0);
        Constraint::Length(u16::try_from(widest).unwrap_or(u16::MAX).min(MAX_WIDTH[i]))
    });
    let rows = cells
        .into_iter()
        .map(|r| Row::new(Column::ALL.iter().zip(r).map(|(&c, text)| align(c, text))));
    Table::new(rows, widths).header(header).column_spacing(2)
}

/// Figures line up on the right, text on the left.
fn align(column: Column, text: String) -> Cell<'static> {
    let line = Line::from(text);
    Cell::from(if column.is_figure() {
        line.right_aligned()
    } else {
        line
    })
}

#[cfg(test)]
mod tests;
