//! The generic tree: a statement is a keyword and the words after it on its logical line,
//! optionally followed by a `{ ... }` block of statements. The `{` may stand on the keyword's
//! line or alone on a later one; `}` ends the statement before it on the same line.

use super::{
    diag::{ConfigError, Pos},
    lexer::{Token, TokenKind},
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub pos: Pos,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub key: Word,
    pub args: Vec<Word>,
    pub block: Option<Block>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Position of the `{`.
    pub open: Pos,
    pub nodes: Vec<Node>,
}

/// Blocks nested deeper than this are refused: keepalived's deepest (a virtual server's real
/// server's checker's url) is four, and every pass over the tree (reading it, comparing it on
/// reload, dropping it) recurses once a level, so a hostile depth would overflow the stack.
pub const MAX_BLOCK_DEPTH: usize = 32;

/// An open block while the tree is being built.
struct Frame {
    node: Node,
    nodes: Vec<Node>,
    open: Pos,
}

pub(super) fn build(tokens: Vec<Token>) -> Result<Vec<Node>, ConfigError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut top: Vec<Node> = Vec::new();
    // The statement being read, and the logical line it is on.
    let mut current: Option<(Node, u64)> = None;

    fn nodes_of<'a>(stack: &'a mut [Frame], top: &'a mut Vec<Node>) -> &'a mut Vec<Node> {
        match stack.last_mut() {
            Some(f) => &mut f.nodes,
            None => top,
        }
    }

    for token in tokens {
        match token.kind {
            TokenKind::Word(text) => {
                let word = Word {
                    text,
                    pos: token.pos,
                };
                match &mut current {
                    Some((node, line)) if *line == token.line => node.args.push(word),
                    _ => {
                        if let Some((node, _)) = current.take() {
                            nodes_of(&mut stack, &mut top).push(node);
                        }
                        current = Some((
                            Node {
                                key: word,
                                args: Vec::new(),
                                block: None,
                            },
                            token.line,
                        ));
                    }
                }
            }
            TokenKind::Open => {
                // The statement still being read owns the block, also when the `{` stands on a
                // later line.
                let Some((node, _)) = current.take() else {
                    return Err(ConfigError::at(
                        &token.pos,
                        "unexpected '{' without a keyword before it",
                    ));
                };
                if stack.len() >= MAX_BLOCK_DEPTH {
                    return Err(ConfigError::at(
                        &token.pos,
                        format!("blocks nested deeper than {MAX_BLOCK_DEPTH}"),
                    ));
                }
                stack.push(Frame {
                    node,
                    nodes: Vec::new(),
                    open: token.pos,
                });
            }
            TokenKind::Close => {
                if let Some((node, _)) = current.take() {
                    nodes_of(&mut stack, &mut top).push(node);
                }
                let Some(frame) = stack.pop() else {
                    return Err(ConfigError::at(
                        &token.pos,
                        "unexpected '}' without an open block",
                    ));
                };
                let mut node = frame.node;
                node.block = Some(Block {
                    open: frame.open,
                    nodes: frame.nodes,
                });
                nodes_of(&mut stack, &mut top).push(node);
            }
        }
    }
    if let Some(frame) = stack.pop() {
        return Err(ConfigError::at(
            &frame.node.key.pos,
            format!(
                "block '{}' is not closed: missing '}}'",
                frame.node.key.text
            ),
        ));
    }
    if let Some((node, _)) = current.take() {
        top.push(node);
    }
    Ok(top)
}
