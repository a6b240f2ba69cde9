//! `weft top` on a terminal: the full-screen table, redrawn every `--interval` and at once
//! on a key, until `q`, Esc or Ctrl-C (or `--duration`). The events arrive on the runtime's
//! worker while this thread waits for keys.

use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::DefaultTerminal;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::Receiver;
use weft_core::tap::TapEvent;

use super::render::{render, Screen};
use super::rows::{Column, Sort, Table};
use crate::tap_source::Sources;

/// What a key asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    Redraw,
    Nothing,
}

/// Runs the screen; the terminal is given back as it was, whatever happens.
pub fn run(
    events: Receiver<TapEvent>,
    filter: &str,
    sort: Sort,
    refresh: Duration,
    until: Option<Instant>,
) -> anyhow::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, events, filter, sort, refresh, until);
    ratatui::try_restore()?;
    result?.finish()
}

fn event_loop(
    terminal: &mut DefaultTerminal,
    mut events: Receiver<TapEvent>,
    filter: &str,
    mut sort: Sort,
    refresh: Duration,
    until: Option<Instant>,
) -> anyhow::Result<Sources> {
    let mut table = Table::default();
    let mut sources = Sources::default();
    let mut status: Option<String> = None;
    let mut ended = false;
    let mut next_draw = Instant::now();
    loop {
        while !ended {
            match events.try_recv() {
                Ok(e) => {
                    if let Some(why) = sources.note(&e) {
                        status = Some(why);
                    }
                    table.record(&e);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    ended = true;
                    // The table stays up to be read; the reasons are in the line below it.
                    status = Some(match status.take() {
                        Some(why) => format!("every tap stream has ended ({why})   q: quit"),
                        None => "every tap stream has ended   q: quit".into(),
                    });
                }
            }
        }
        let now = Instant::now();
        if until.is_some_and(|u| now >= u) {
            return Ok(sources);
        }
        if now >= next_draw {
            let rows = table.view(sort);
            terminal.draw(|f| {
                render(
                    f,
                    &Screen {
                        filter,
                        requests: table.requests(),
                        rows: &rows,
                        sort,
                        status: status.as_deref(),
                    },
                )
            })?;
            next_draw = now + refresh;
        }
        // Short waits keep the stream drained: the sources hold only so many events.
        if event::poll(Duration::from_millis(50))? {
            let action = match event::read()? {
                Event::Key(k) => on_key(k, &mut sort),
                Event::Resize(..) => Action::Redraw,
                _ => Action::Nothing,
            };
            match action {
                Action::Quit => return Ok(sources),
                Action::Redraw => next_draw = Instant::now(),
                Action::Nothing => {}
            }
        }
    }
}

/// `q`, Esc, Ctrl-C: quit. ←/→ (or h/l): the sort column to the left/right; 1…9, 0: the
/// first ten columns, and the current one again turns the order around, as `r` does.
pub fn on_key(key: KeyEvent, sort: &mut Sort) -> Action {
    if key.kind == KeyEventKind::Release {
        return Action::Nothing;
    }
    let choose = |sort: &mut Sort, column: Column| {
        if sort.column == column {
            sort.reversed = !sort.reversed;
        } else {
            *sort = Sort {
                column,
                reversed: false,
            };
        }
        Action::Redraw
    };
    match key.code {
        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Action::Quit,
        KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
        KeyCode::Left | KeyCode::Char('h') => {
            *sort = Sort {
                column: sort.column.step(-1),
                reversed: false,
            };
            Action::Redraw
        }
        KeyCode::Right | KeyCode::Char('l') => {
            *sort = Sort {
                column: sort.column.step(1),
                reversed: false,
            };
            Action::Redraw
        }
        KeyCode::Char('r') => {
            sort.reversed = !sort.reversed;
            Action::Redraw
        }
        KeyCode::Char(d @ '0'..='9') => {
            let i = (d as usize - '0' as usize + 9) % 10;
            choose(sort, Column::ALL[i])
        }
        _ => Action::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(sort: &mut Sort, code: KeyCode) -> Action {
        on_key(KeyEvent::new(code, KeyModifiers::NONE), sort)
    }

    #[test]
    fn keys_choose_the_sort_column_and_turn_the_order_around() {
        let mut sort = Sort::default();
        assert_eq!(press(&mut sort, KeyCode::Right), Action::Redraw);
        assert_eq!(sort.column, Column::Success);
        press(&mut sort, KeyCode::Char('r'));
        assert!(sort.reversed);
        press(&mut sort, KeyCode::Left);
        assert_eq!(
            sort,
            Sort {
                column: Column::Count,
                reversed: false
            }
        );
        press(&mut sort, KeyCode::Char('1'));
        assert_eq!(sort.column, Column::Source);
        press(&mut sort, KeyCode::Char('0'));
        assert_eq!(sort.column, Column::Best);
        press(&mut sort, KeyCode::Char('0'));
        assert!(sort.reversed, "the current column's key again reverses");
        press(&mut sort, KeyCode::Char('9'));
        assert_eq!((sort.column, sort.reversed), (Column::P99, false));
        assert_eq!(press(&mut sort, KeyCode::Char('x')), Action::Nothing);
    }

    #[test]
    fn q_esc_and_ctrl_c_quit() {
        let mut sort = Sort::default();
        assert_eq!(press(&mut sort, KeyCode::Char('q')), Action::Quit);
        assert_eq!(press(&mut sort, KeyCode::Esc), Action::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(on_key(ctrl_c, &mut sort), Action::Quit);
        assert_eq!(press(&mut sort, KeyCode::Char('c')), Action::Nothing);
    }
}
