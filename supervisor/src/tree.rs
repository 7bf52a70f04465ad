//! The readable form of a plan that `serve check` prints: one line per factory, its settings
//! under it, filters above the app they wrap, a composite's apps indented below it.

use deploy::plan::{Factory, Node, Plan};
use std::fmt::Write;

/// Renders a plan.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    match &plan.server {
        Some(server) => {
            out.push_str("server:\n");
            factory_line(&mut out, 1, "server", &server.factory);
        }
        None => out.push_str("server: none in the file (serve's defaults apply)\n"),
    }
    out.push_str("app:\n");
    node(&mut out, 1, &plan.app);
    if let Some(python) = &plan.python {
        let _ = writeln!(out, "python: {}", python.display());
    }
    out
}

fn node(out: &mut String, depth: usize, node: &Node) {
    match node {
        Node::App(factory) => factory_line(out, depth, "app", factory),
        Node::Filter { factory, app } => {
            factory_line(out, depth, "filter", factory);
            self::node(out, depth, app);
        }
        Node::Composite { factory, apps } => {
            factory_line(out, depth, "composite", factory);
            for (name, app) in apps {
                let _ = writeln!(out, "{}{name} ->", indent(depth + 1));
                self::node(out, depth + 2, app);
            }
        }
    }
}

fn indent(depth: usize) -> String {
    "  ".repeat(depth)
}

fn factory_line(out: &mut String, depth: usize, kind: &str, factory: &Factory) {
    let pad = indent(depth);
    let _ = write!(out, "{pad}{kind:<9} {} ({})", factory.egg, factory.protocol);
    if factory.runtime == deploy::Runtime::Python {
        out.push_str(" python");
    }
    if let Some(call) = &factory.call {
        let _ = write!(out, " as {call}");
    }
    if let Some(section) = &factory.section {
        let _ = write!(out, "  [{section}]");
    }
    if let (Some(file), Some(line)) = (&factory.file, factory.line) {
        let _ = write!(out, " {}:{line}", file.display());
    }
    out.push('\n');
    for (key, value) in &factory.local_conf {
        let value = value.replace('\n', &format!("\n{pad}              "));
        let _ = writeln!(out, "{pad}            {key} = {value}");
    }
}
