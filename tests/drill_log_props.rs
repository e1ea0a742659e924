//! Property: for any Markdown document made of headings, paragraphs, tables and code fences
//! (LF or CRLF, with or without a final newline), appending to the drill log changes exactly
//! one contiguous run of lines: one new row after the drill log table, or a new table.

use drillbook::drill_log::{AppendOutcome, DrillLogEntry, append_to_document};
use proptest::prelude::*;

const RUN_ID: &str = "ab12cd34";

#[derive(Debug, Clone)]
enum Block {
    /// ATX (`##`) or setext (underlined) heading.
    Heading {
        level: usize,
        text: String,
        setext: bool,
    },
    Paragraph(String),
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
        outer_pipes: bool,
    },
    /// A fenced code block whose content looks like a drill log: it must be ignored.
    Fence,
}

impl Block {
    fn lines(&self) -> Vec<String> {
        match self {
            Block::Heading {
                level,
                text,
                setext: true,
            } => {
                let underline = if *level == 1 { "=====" } else { "-----" };
                vec![text.clone(), underline.to_owned()]
            }
            Block::Heading { level, text, .. } => vec![format!("{} {text}", "#".repeat(*level))],
            Block::Paragraph(text) => vec![text.clone()],
            Block::Table {
                header,
                rows,
                outer_pipes,
            } => {
                let row = |cells: &[String]| {
                    let inner = cells.join(" | ");
                    if *outer_pipes {
                        format!("| {inner} |")
                    } else {
                        inner
                    }
                };
                let delimiter = vec!["---".to_owned(); header.len()];
                let mut lines = vec![row(header), row(&delimiter)];
                lines.extend(rows.iter().map(|r| row(r)));
                lines
            }
            Block::Fence => vec![
                "```md".to_owned(),
                "## Drill log".to_owned(),
                "| Date | Result |".to_owned(),
                "|---|---|".to_owned(),
                "```".to_owned(),
            ],
        }
    }

    fn is_drill_log_heading(&self) -> Option<usize> {
        match self {
            Block::Heading { level, text, .. } if text.to_lowercase().contains("drill log") => {
                Some(*level)
            }
            _ => None,
        }
    }

    fn heading_level(&self) -> Option<usize> {
        match self {
            Block::Heading { level, .. } => Some(*level),
            _ => None,
        }
    }
}

fn heading(with_drill_log: bool) -> impl Strategy<Value = Block> {
    let mut texts = vec!["Overview", "Rollback", "Contacts", "Watch list"];
    if with_drill_log {
        texts.extend(["Drill log", "Drill log", "drill LOG (staging)", "Drill log"]);
    }
    (1usize..=3, proptest::sample::select(texts), any::<bool>()).prop_map(
        |(level, text, setext)| Block::Heading {
            // Setext headings only exist at levels 1 and 2.
            level: if setext { level.min(2) } else { level },
            text: text.to_owned(),
            setext,
        },
    )
}

fn table() -> impl Strategy<Value = Block> {
    let columns = prop::sample::subsequence(
        vec![
            "Date", "Action", "Result", "Who", "Notes", "Run id", "Owner", "Link",
        ],
        1..=5,
    );
    let word = prop::sample::select(vec!["pending", "initial migration", "ok", "x", "", "fail"]);
    (columns, any::<bool>(), 0usize..4)
        .prop_flat_map(move |(columns, outer_pipes, rows)| {
            let width = columns.len();
            let rows = prop::collection::vec(prop::collection::vec(word.clone(), width), rows);
            (Just(columns), Just(outer_pipes), rows)
        })
        .prop_map(|(columns, outer_pipes, rows)| Block::Table {
            header: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: rows
                .into_iter()
                .map(|r| r.into_iter().map(str::to_owned).collect())
                .collect(),
            // A one-column table needs its pipes to be a table at all.
            outer_pipes: outer_pipes || columns.len() == 1,
        })
}

fn block(with_drill_log: bool) -> impl Strategy<Value = Block> {
    prop_oneof![
        3 => heading(with_drill_log),
        2 => prop::sample::select(vec!["Some text.", "Flip the flag, then helm upgrade."])
            .prop_map(|t| Block::Paragraph(t.to_owned())),
        3 => table(),
        1 => Just(Block::Fence),
    ]
}

#[derive(Debug, Clone)]
struct Document {
    blocks: Vec<Block>,
    crlf: bool,
    final_newline: bool,
}

impl Document {
    /// Blocks separated by blank lines, so no block can continue another.
    fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            if i > 0 {
                lines.push(String::new());
            }
            lines.extend(block.lines());
        }
        lines
    }

    fn text(&self) -> String {
        let eol = if self.crlf { "\r\n" } else { "\n" };
        let mut text = self.lines().join(eol);
        if self.final_newline && !text.is_empty() {
            text.push_str(eol);
        }
        text
    }

    /// Where the new row must go: the line after the drill log table, if there is one.
    fn expected_row_line(&self) -> Option<usize> {
        let start = self
            .blocks
            .iter()
            .position(|b| b.is_drill_log_heading().is_some())?;
        let level = self.blocks[start].is_drill_log_heading()?;
        let mut line = self.blocks[..=start]
            .iter()
            .map(|b| b.lines().len() + 1)
            .sum::<usize>();
        for block in &self.blocks[start + 1..] {
            if block.heading_level().is_some_and(|l| l <= level) {
                return None;
            }
            if let Block::Table { .. } = block {
                return Some(line + block.lines().len());
            }
            line += block.lines().len() + 1;
        }
        None
    }
}

fn document() -> impl Strategy<Value = Document> {
    any::<bool>()
        .prop_flat_map(|with_drill_log| {
            (
                prop::collection::vec(block(with_drill_log), 0..10),
                any::<bool>(),
                any::<bool>(),
            )
        })
        .prop_map(|(blocks, crlf, final_newline)| Document {
            blocks,
            crlf,
            final_newline,
        })
}

fn entry() -> DrillLogEntry {
    DrillLogEntry {
        run_id: RUN_ID.to_owned(),
        date: "2026-11-22".to_owned(),
        scenario: "proxy-restart".to_owned(),
        verdict: "pass".to_owned(),
        operator: "Dana | ops".to_owned(),
        notes: "ok".to_owned(),
        report_link: Some("reports/r/report.md".to_owned()),
    }
}

/// Lines without their endings, as `str::lines` would give them (CR stripped).
fn lines_of(text: &str) -> Vec<&str> {
    text.lines().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn append_inserts_exactly_one_row_or_one_table(doc in document()) {
        let input = doc.text();
        let (output, outcome) = append_to_document(&input, &entry());
        let (before, after) = (lines_of(&input), lines_of(&output));

        // One contiguous insertion: common prefix + common suffix cover the whole input.
        let prefix = before.iter().zip(&after).take_while(|(a, b)| a == b).count();
        let max_suffix = before.len().min(after.len()) - prefix;
        let suffix = before.iter().rev().zip(after.iter().rev())
            .take(max_suffix)
            .take_while(|(a, b)| a == b)
            .count();
        prop_assert_eq!(prefix + suffix, before.len(), "input lines changed:\n{}\n---\n{}", input, output);
        let inserted = &after[prefix..after.len() - suffix];

        match doc.expected_row_line() {
            Some(line) => {
                prop_assert_eq!(outcome, AppendOutcome::Appended);
                prop_assert_eq!(inserted.len(), 1);
                prop_assert_eq!(after[line], inserted[0], "row at the wrong line");
                prop_assert!(inserted[0].contains("Dana \\| ops") || !inserted[0].contains("Dana"));
            }
            None => {
                prop_assert_eq!(outcome, AppendOutcome::CreatedSection);
                let has_section = doc.blocks.iter().any(|b| b.is_drill_log_heading().is_some());
                prop_assert_eq!(inserted.contains(&"## Drill log"), !has_section);
                prop_assert!(inserted.contains(&"| Date | Scenario | Verdict | Operator | Run | Notes |"));
                prop_assert!(inserted.iter().any(|l| l.contains(RUN_ID) && l.contains("Dana \\| ops")));
            }
        }
        prop_assert_eq!(inserted.iter().filter(|l| l.contains(RUN_ID)).count(), 1);

        // Line endings: the file's own style (LF when it has none), and a missing final
        // newline stays missing.
        if input.contains('\n') && doc.crlf {
            prop_assert_eq!(output.matches('\n').count(), output.matches("\r\n").count());
        } else {
            prop_assert!(!output.contains('\r'));
        }
        if !input.is_empty() {
            prop_assert_eq!(output.ends_with('\n'), input.ends_with('\n'));
        }

        // Idempotent: a second append of the same run changes nothing.
        let (again, outcome) = append_to_document(&output, &entry());
        prop_assert_eq!(outcome, AppendOutcome::AlreadyPresent);
        prop_assert_eq!(again, output);
    }
}
