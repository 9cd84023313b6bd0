//! `peervault completions SHELL`: scripts generated from the command line's
//! definition.
//!
//! The original program's flags are single-dash (`-addr :3000`) and the README
//! uses them; [`super::args::normalise_args`] accepts both spellings, but
//! clap_complete's bash script knows only `--addr`, so `-data-d<TAB>` offered
//! nothing and a value after `-log-format` was completed as a flag. The bash
//! script is therefore taught the single-dash spelling of every long option.

use std::io::{self, Write};

use clap::CommandFactory;
use clap_complete::Shell;

use super::args::Cli;

/// Writes the completion script for `shell` to `out`.
pub fn write(shell: Shell, out: &mut dyn Write) -> io::Result<()> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "peervault", &mut script);
    if shell == Shell::Bash {
        script = with_single_dash_flags(&String::from_utf8_lossy(&script)).into_bytes();
    }
    out.write_all(&script)
}

/// Adds `-name` wherever clap's bash script offers or matches `--name`: in the
/// words offered (`opts="..."`) and in the arms that complete an option's value.
fn with_single_dash_flags(script: &str) -> String {
    let mut out = String::with_capacity(script.len() * 2);
    for line in script.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        let trimmed = line.trim_start();
        if let Some(words) = trimmed
            .strip_prefix("opts=\"")
            .and_then(|rest| rest.strip_suffix('"'))
        {
            let mut offered = Vec::new();
            for word in words.split_whitespace() {
                if let Some(long) = long_name(word) {
                    offered.push(format!("-{long}"));
                }
                offered.push(word.to_string());
            }
            out.push_str(&format!("{indent}opts=\"{}\"", offered.join(" ")));
        } else if let Some(long) = trimmed.strip_suffix(')').and_then(long_name) {
            out.push_str(&format!("{indent}--{long}|-{long})"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// `name` of a `--name` word (a long option of more than one letter).
fn long_name(word: &str) -> Option<&str> {
    word.strip_prefix("--").filter(|name| {
        name.len() > 1 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_offers_and_matches_both_spellings() {
        let script = "    opts=\"-o -h --output --addr get\"\n        case \"${prev}\" in\n                --addr)\n                -o)\n";
        assert_eq!(
            with_single_dash_flags(script),
            "    opts=\"-o -h -output --output -addr --addr get\"\n        case \"${prev}\" in\n                --addr|-addr)\n                -o)\n"
        );
    }

    #[test]
    fn the_real_script_knows_the_readme_flags() {
        let mut out = Vec::new();
        write(Shell::Bash, &mut out).unwrap();
        let script = String::from_utf8(out).unwrap();
        assert!(script.contains(" -addr --addr "), "offered");
        assert!(
            script.contains("--log-format|-log-format)"),
            "values completed"
        );
    }
}
