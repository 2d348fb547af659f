//! Terminal colour: on for terminals unless NO_COLOR is set, or as chosen
//! with --color.

use std::io::IsTerminal;

/// When to colour output.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// ANSI styling, or none.
pub struct Style {
    on: bool,
}

const MDEV_COLOURS: [&str; 6] = ["32", "33", "35", "36", "91", "94"];

impl Style {
    pub fn new(choice: ColorChoice) -> Style {
        let on = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
            }
        };
        Style { on }
    }

    #[cfg(test)]
    pub fn plain() -> Style {
        Style { on: false }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn host(&self, text: &str) -> String {
        self.paint("34", text)
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn error(&self, text: &str) -> String {
        self.paint("31", text)
    }

    /// An mdev's label: its own colour, bold when its guest has the APQN,
    /// dim when the queue does not exist.
    pub fn mdev(&self, label: &str, index: usize, in_guest: bool, exists: bool) -> String {
        let colour = MDEV_COLOURS[index % MDEV_COLOURS.len()];
        let code = match (in_guest, exists) {
            (_, false) => format!("2;{colour}"),
            (true, true) => format!("1;{colour}"),
            (false, true) => colour.to_string(),
        };
        self.paint(&code, label)
    }
}

/// A line on stderr, if anyone is listening: a closed stderr must not
/// end a server mid-request (eprintln! would panic).
pub fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
