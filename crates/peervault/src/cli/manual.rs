//! `peervault man`: one manual page for the whole program.
//!
//! clap_mangen writes a page per program and, for subcommands, only names
//! `peervault-put(1)` and its like, pages nobody installs. So the main page's
//! sections come from clap_mangen and its COMMANDS section, with every
//! subcommand's usage, description and options, is written here from the same
//! command-line definition.

use std::io::{self, Write};

use clap::CommandFactory;

use super::args::Cli;

/// Writes the manual page, in roff, to `out`.
pub fn render(out: &mut dyn Write) -> io::Result<()> {
    let mut cli = Cli::command();
    // Built, so that every argument knows its value names.
    cli.build();
    let page = clap_mangen::Man::new(cli.clone());
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    page.render_options_section(out)?;
    writeln!(out, ".SH COMMANDS")?;
    writeln!(
        out,
        "Each command also takes the global options above (\\fB\\-\\-addr\\fR, \\fB\\-\\-data\\-dir\\fR, ...)."
    )?;
    commands(&cli, cli.get_name(), out)?;
    page.render_extra_section(out)?;
    page.render_version_section(out)
}

/// The COMMANDS section: each visible subcommand of `parent` (called `path`),
/// and theirs, with usage and options.
fn commands(parent: &clap::Command, path: &str, out: &mut dyn Write) -> io::Result<()> {
    let shown = |s: &&clap::Command| !s.is_hide_set() && s.get_name() != "help";
    for sub in parent.get_subcommands().filter(shown) {
        let name = format!("{path} {}", sub.get_name());
        let usage = sub.clone().bin_name(&name).render_usage().to_string();
        let usage = usage.strip_prefix("Usage: ").unwrap_or(&usage);
        writeln!(out, ".TP\n\\fB{}\\fR", escape(usage))?;
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            writeln!(out, "{}", escape(&about.to_string()))?;
        }
        let aliases: Vec<&str> = sub.get_visible_aliases().collect();
        if !aliases.is_empty() {
            writeln!(out, ".br\nAlso: {}.", escape(&aliases.join(", ")))?;
        }
        let options: Vec<&clap::Arg> = sub
            .get_arguments()
            .filter(|a| {
                !a.is_hide_set() && !a.is_positional() && !a.is_global_set() && a.get_id() != "help"
            })
            .collect();
        if !options.is_empty() {
            writeln!(out, ".RS")?;
            options_list(&options, out)?;
            writeln!(out, ".RE")?;
        }
        commands(sub, &name, out)?;
    }
    Ok(())
}

/// A subcommand's options, one tagged paragraph each.
fn options_list(options: &[&clap::Arg], out: &mut dyn Write) -> io::Result<()> {
    {
        for arg in options {
            let mut flags = Vec::new();
            if let Some(short) = arg.get_short() {
                flags.push(format!("-{short}"));
            }
            if let Some(long) = arg.get_long() {
                flags.push(format!("--{long}"));
            }
            let mut head = flags.join(", ");
            if arg.get_num_args().is_some_and(|n| n.takes_values()) {
                for value in arg.get_value_names().unwrap_or_default() {
                    head.push_str(&format!(" <{value}>"));
                }
            }
            writeln!(out, ".TP\n\\fB{}\\fR", escape(&head))?;
            if let Some(help) = arg.get_long_help().or_else(|| arg.get_help()) {
                writeln!(out, "{}", escape(&help.to_string()))?;
            }
        }
    }
    Ok(())
}

/// Text made safe for roff: backslashes and hyphens escaped, and no line that
/// starts with a control character.
fn escape(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.replace('\\', "\\e").replace('-', "\\-");
            if line.starts_with(['.', '\'']) {
                format!("\\&{line}")
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_names_no_other_pages_and_documents_every_command() {
        let mut page = Vec::new();
        render(&mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(
            !page.contains("peervault\\-put(1)") && !page.contains("(1)\n"),
            "{page}"
        );
        assert!(page.contains(".SH COMMANDS"));
        for command in Cli::command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
        {
            let usage = format!("\\fBpeervault {}", command.get_name());
            assert!(page.contains(&usage), "{usage} missing");
        }
        assert!(page.contains("\\-\\-force"), "get's options are listed");
        assert!(page.contains("\\-\\-name <NAME>"), "with their values");
        assert!(
            page.contains("\\fBpeervault quota set"),
            "and nested commands"
        );
    }

    #[test]
    fn roff_controls_are_escaped() {
        assert_eq!(
            escape(".hidden\n'x\na-b\\c"),
            "\\&.hidden\n\\&'x\na\\-b\\ec"
        );
    }
}
