//! The polluter → victim graph, as inline SVG laid out here: culprits on the left, the tests they
//! break (victims) or set up (brittle tests) on the right, each edge labelled with the tables the
//! evidence names. Polluter edges are solid, state-setter edges dashed.

use std::fmt::Write;

use super::{esc, finding_anchor, kind_name};
use crate::model::{Finding, FindingKind};

const WIDTH: f64 = 1120.0;
const NODE_WIDTH: f64 = 400.0;
const NODE_HEIGHT: f64 = 30.0;
const NODE_GAP: f64 = 14.0;
const TOP: f64 = 34.0;
/// Characters of a test id that fit in a node at the node's font size.
const NODE_CHARS: usize = 52;
const LABEL_CHARS: usize = 40;

struct Edge {
    culprit: usize,
    suspect: usize,
    state_setter: bool,
    tables: String,
}

pub(super) fn section(page: &mut String, findings: &[&Finding]) {
    page.push_str("<section id=\"graph\">\n<h2>Polluters → victims</h2>\n");
    let mut culprits: Vec<(&str, usize)> = Vec::new();
    let mut suspects: Vec<(&Finding, usize)> = Vec::new();
    let mut edges = Vec::new();
    for (n, finding) in findings.iter().enumerate() {
        let (names, state_setter) = match finding.kind {
            FindingKind::Victim => (&finding.polluters, false),
            FindingKind::Brittle => (&finding.state_setters, true),
            _ => continue,
        };
        if names.is_empty() {
            continue;
        }
        let suspect = suspects.len();
        suspects.push((finding, n + 1));
        let tables = finding
            .evidence
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| t.table.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        for name in names {
            let culprit = match culprits.iter().position(|(c, _)| c == name) {
                Some(i) => i,
                None => {
                    culprits.push((name, n + 1));
                    culprits.len() - 1
                }
            };
            edges.push(Edge {
                culprit,
                suspect,
                state_setter,
                tables: tables.clone(),
            });
        }
    }
    if edges.is_empty() {
        page.push_str(
            "<p class=\"empty\">No polluter or state-setter was found.</p>\n</section>\n",
        );
        return;
    }
    page.push_str("<ul class=\"legend\"><li><i class=\"edge polluter\"></i>polluter → victim (left rows behind)</li><li><i class=\"edge setter\"></i>state-setter → brittle test (set up what it needs)</li></ul>\n");

    let rows = culprits.len().max(suspects.len()) as f64;
    let height = TOP + rows * (NODE_HEIGHT + NODE_GAP) + 8.0;
    let column_y = |count: usize, i: usize| {
        let offset = (rows - count as f64) * (NODE_HEIGHT + NODE_GAP) / 2.0;
        TOP + offset + i as f64 * (NODE_HEIGHT + NODE_GAP)
    };
    let left_x = 8.0;
    let right_x = WIDTH - 8.0 - NODE_WIDTH;
    let _ = write!(
        page,
        "<svg class=\"graph\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"Polluter to victim graph\" xmlns=\"http://www.w3.org/2000/svg\">\
<defs><marker id=\"arrow-polluter\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" class=\"head polluter\"/></marker>\
<marker id=\"arrow-setter\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" class=\"head setter\"/></marker></defs>\
<text x=\"{left_x}\" y=\"18\" class=\"column\">CULPRIT</text><text x=\"{right_x}\" y=\"18\" class=\"column\">SUSPECT</text>"
    );

    // Edges first, so the nodes and labels sit on top of them. The tables are the suspect's
    // finding's, so each suspect's label is drawn once: mid-edge when one edge comes in, else
    // near the suspect on its flattest edge, where its edges meet.
    let ends = |edge: &Edge| {
        let x1 = left_x + NODE_WIDTH;
        let y1 = column_y(culprits.len(), edge.culprit) + NODE_HEIGHT / 2.0;
        let x2 = right_x - 2.0;
        let y2 = column_y(suspects.len(), edge.suspect) + NODE_HEIGHT / 2.0;
        (x1, y1, x2, y2)
    };
    let mut labelled: Vec<Option<usize>> = vec![None; suspects.len()];
    for (i, edge) in edges.iter().enumerate() {
        let flatness = |e: &Edge| {
            let (_, y1, _, y2) = ends(e);
            (y1 - y2).abs()
        };
        match labelled[edge.suspect] {
            Some(j) if flatness(&edges[j]) <= flatness(edge) => {}
            _ => labelled[edge.suspect] = Some(i),
        }
    }
    let mut labels = String::new();
    for (i, edge) in edges.iter().enumerate() {
        let (x1, y1, x2, y2) = ends(edge);
        let dx = (x2 - x1) / 2.0;
        let class = if edge.state_setter {
            "setter"
        } else {
            "polluter"
        };
        let _ = write!(
            page,
            "<path class=\"edge {class}\" d=\"M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}\" marker-end=\"url(#arrow-{class})\"/>",
            x1 + dx,
            x2 - dx
        );
        if edge.tables.is_empty() || labelled[edge.suspect] != Some(i) {
            continue;
        }
        let incoming = edges.iter().filter(|e| e.suspect == edge.suspect).count();
        let t = if incoming == 1 { 0.5 } else { 0.72 };
        let (lx, ly) = bezier((x1, y1), (x1 + dx, y1), (x2 - dx, y2), (x2, y2), t);
        let text = super::cut(&edge.tables, LABEL_CHARS);
        let w = text.chars().count() as f64 * 6.6 + 16.0;
        let lx = lx.min(x2 - 14.0 - w / 2.0);
        let _ = write!(
            labels,
            "<g class=\"edge-label {class}\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"18\" rx=\"9\"/><text x=\"{lx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text><title>{}</title></g>",
            lx - w / 2.0,
            ly - 9.0,
            ly + 4.0,
            esc(&text),
            esc(&edge.tables)
        );
    }
    for (i, (name, first)) in culprits.iter().enumerate() {
        node(
            page,
            left_x,
            column_y(culprits.len(), i),
            name,
            "culprit",
            *first,
        );
    }
    for (i, (finding, n)) in suspects.iter().enumerate() {
        node(
            page,
            right_x,
            column_y(suspects.len(), i),
            &finding.test,
            kind_name(finding.kind),
            *n,
        );
    }
    page.push_str(&labels);
    page.push_str("</svg>\n</section>\n");
}

fn node(page: &mut String, x: f64, y: f64, test: &str, class: &str, finding: usize) {
    let shown = keep_tail(test, NODE_CHARS);
    let _ = write!(
        page,
        "<a href=\"#{}\" class=\"node {class}\"><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{NODE_WIDTH}\" height=\"{NODE_HEIGHT}\" rx=\"6\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text><title>{}</title></a>",
        finding_anchor(finding),
        x + 12.0,
        y + NODE_HEIGHT / 2.0 + 4.5,
        esc(&shown),
        esc(test)
    );
}

/// A test id cut from the front: its last part (the test's own name) says the most.
fn keep_tail(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        text.to_string()
    } else {
        let tail: String = text.chars().skip(count - (max - 1)).collect();
        format!("…{tail}")
    }
}

fn bezier(p0: (f64, f64), p1: (f64, f64), p2: (f64, f64), p3: (f64, f64), t: f64) -> (f64, f64) {
    let u = 1.0 - t;
    let at = |a: f64, b: f64, c: f64, d: f64| {
        u * u * u * a + 3.0 * u * u * t * b + 3.0 * u * t * t * c + t * t * t * d
    };
    (at(p0.0, p1.0, p2.0, p3.0), at(p0.1, p1.1, p2.1, p3.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_ids_keep_their_tail() {
        assert_eq!(keep_tail("abcdef", 4), "…def");
        assert_eq!(keep_tail("abc", 4), "abc");
    }
}
