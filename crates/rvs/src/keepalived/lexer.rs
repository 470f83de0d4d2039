//! keepalived's lexer: a file is a sequence of lines, a line a sequence of whitespace-separated
//! words; `{` and `}` are tokens of their own even when glued to a word; `!` and `#` start a
//! comment that runs to the end of the line; `"..."` and `'...'` quote (the quotes are removed,
//! text glued to them stays part of the same word, backslash escapes are read); a `\` at the end
//! of a line continues it on the next. `include PATTERN` is replaced by the tokens of the files
//! the glob matches, read relative to the directory of the file that includes them.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::diag::{ConfigError, Diagnostic, Pos};

/// Includes nested deeper than this are refused (a loop through symlinks or generated names
/// would otherwise only end with memory).
const MAX_INCLUDE_DEPTH: usize = 32;
/// Bounds on everything one load reads, includes included: a file that includes another twice,
/// nested, doubles the text at each level (a few lines would expand to gigabytes).
const MAX_FILES_READ: usize = 4096;
const MAX_BYTES_READ: u64 = 64 << 20;

const INCLUDE_KEYWORDS: &[&str] = &[
    "include", "includer", "includem", "includew", "includeb", "includea",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TokenKind {
    Word(String),
    Open,
    Close,
}

#[derive(Clone, Debug)]
pub(super) struct Token {
    pub kind: TokenKind,
    pub pos: Pos,
    /// Identifies the logical line (continuations joined) across all files: words of one
    /// statement share it.
    pub line: u64,
}

/// Reads `path` and everything it includes into one token stream.
pub(super) fn lex_file(
    path: &Path,
    warnings: &mut Vec<Diagnostic>,
) -> Result<Vec<Token>, ConfigError> {
    let name = path.display().to_string();
    let mut lexer = Lexer::new(warnings);
    let bytes = lexer
        .read(path)
        .map_err(|e| ConfigError::file(&name, format!("cannot read: {e}")))?;
    let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    lexer.stack.push(canonical);
    lexer.lex(&name, path.parent(), &String::from_utf8_lossy(&bytes))?;
    Ok(lexer.tokens)
}

/// Lexes `text` as if it were the file `name` (includes resolve relative to its directory).
pub(super) fn lex_str(
    name: &str,
    text: &str,
    warnings: &mut Vec<Diagnostic>,
) -> Result<Vec<Token>, ConfigError> {
    let mut lexer = Lexer::new(warnings);
    lexer.lex(name, Path::new(name).parent(), text)?;
    Ok(lexer.tokens)
}

/// Why a file was not read: the system's error, or a bound of the loader's.
enum ReadError {
    Io(std::io::Error),
    Refused(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => e.fmt(f),
            ReadError::Refused(why) => f.write_str(why),
        }
    }
}

struct Lexer<'w> {
    warnings: &'w mut Vec<Diagnostic>,
    tokens: Vec<Token>,
    /// Canonical paths of the files being read, outermost first: the include loop guard.
    stack: Vec<PathBuf>,
    next_line: u64,
    files_read: usize,
    bytes_read: u64,
}

impl<'w> Lexer<'w> {
    fn new(warnings: &'w mut Vec<Diagnostic>) -> Lexer<'w> {
        Lexer {
            warnings,
            tokens: Vec::new(),
            stack: Vec::new(),
            next_line: 0,
            files_read: 0,
            bytes_read: 0,
        }
    }

    /// A configuration file's bytes: a regular file only (a FIFO or a device would block the
    /// loader or never end; it is opened without blocking and checked before a byte is read),
    /// within what one load may read in all.
    fn read(&mut self, path: &Path) -> Result<Vec<u8>, ReadError> {
        use std::{io::Read, os::unix::fs::OpenOptionsExt};
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(ReadError::Io)?;
        if !f.metadata().map_err(ReadError::Io)?.is_file() {
            return Err(ReadError::Refused("not a regular file".into()));
        }
        self.files_read += 1;
        if self.files_read > MAX_FILES_READ {
            return Err(ReadError::Refused(format!(
                "more than {MAX_FILES_READ} files read for one configuration"
            )));
        }
        let left = MAX_BYTES_READ - self.bytes_read;
        let mut bytes = Vec::new();
        f.take(left + 1)
            .read_to_end(&mut bytes)
            .map_err(ReadError::Io)?;
        if bytes.len() as u64 > left {
            return Err(ReadError::Refused(format!(
                "more than {} MiB read for one configuration (includes included)",
                MAX_BYTES_READ >> 20
            )));
        }
        self.bytes_read += bytes.len() as u64;
        Ok(bytes)
    }

    fn lex(&mut self, name: &str, dir: Option<&Path>, text: &str) -> Result<(), ConfigError> {
        let file: Arc<str> = name.into();
        let mut logical: Vec<Token> = Vec::new();
        for (index, raw) in text.split('\n').enumerate() {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let line_no = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let continues = lex_line(&file, line_no, raw, self.next_line, &mut logical)?;
            if !continues {
                self.finish_line(dir, std::mem::take(&mut logical))?;
                self.next_line += 1;
            }
        }
        // A continuation on the last line just ends there.
        self.finish_line(dir, logical)?;
        self.next_line += 1;
        Ok(())
    }

    /// Emits a logical line, or the files it includes.
    fn finish_line(&mut self, dir: Option<&Path>, line: Vec<Token>) -> Result<(), ConfigError> {
        // The checked variants (includer, includea, ...) are read as the plain include.
        let is_include = matches!(line.first(), Some(Token { kind: TokenKind::Word(w), .. })
            if INCLUDE_KEYWORDS.contains(&w.as_str()));
        if !is_include {
            self.tokens.extend(line);
            return Ok(());
        }
        let keyword = &line[0];
        let mut patterns = 0;
        for token in &line[1..] {
            match &token.kind {
                TokenKind::Word(pattern) => {
                    patterns += 1;
                    self.include(dir, pattern, &token.pos)?;
                }
                // Braces after the file name belong to the surrounding text.
                TokenKind::Open | TokenKind::Close => self.tokens.push(token.clone()),
            }
        }
        if patterns == 0 {
            return Err(ConfigError::at(&keyword.pos, "'include' needs a file name"));
        }
        Ok(())
    }

    fn include(&mut self, dir: Option<&Path>, pattern: &str, pos: &Pos) -> Result<(), ConfigError> {
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(ConfigError::at(
                pos,
                format!("includes nested deeper than {MAX_INCLUDE_DEPTH} files"),
            ));
        }
        // The directory is taken literally; only the pattern as written is a glob.
        let full_str = match dir {
            Some(d) if Path::new(pattern).is_relative() && !d.as_os_str().is_empty() => {
                format!("{}/{pattern}", glob::Pattern::escape(&d.to_string_lossy()))
            }
            _ => pattern.to_owned(),
        };
        let paths = glob::glob(&full_str).map_err(|e| {
            ConfigError::at(
                pos,
                format!("invalid include pattern '{pattern}': {}", e.msg),
            )
        })?;
        let mut matched = 0;
        for entry in paths {
            let path = match entry {
                Ok(p) => p,
                Err(e) => {
                    self.warnings
                        .push(Diagnostic::new(pos, format!("include '{pattern}': {e}")));
                    continue;
                }
            };
            if path.is_dir() {
                continue;
            }
            matched += 1;
            let canonical = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if self.stack.contains(&canonical) {
                return Err(ConfigError::at(
                    pos,
                    format!("include loop: '{}' is already being read", path.display()),
                ));
            }
            // keepalived's plain `include` does not fail on a file it cannot open; what would
            // block or expand without end is an error, not a warning.
            let bytes = match self.read(&path) {
                Ok(b) => b,
                Err(ReadError::Refused(why)) => {
                    return Err(ConfigError::at(
                        pos,
                        format!("cannot include '{}': {why}", path.display()),
                    ));
                }
                Err(ReadError::Io(e)) => {
                    self.warnings.push(Diagnostic::new(
                        pos,
                        format!("cannot read included file '{}': {e}", path.display()),
                    ));
                    continue;
                }
            };
            self.stack.push(canonical);
            let name = path.display().to_string();
            let result = self.lex(&name, path.parent(), &String::from_utf8_lossy(&bytes));
            self.stack.pop();
            result?;
        }
        if matched == 0 {
            self.warnings.push(Diagnostic::new(
                pos,
                format!("include '{pattern}' matched no file"),
            ));
        }
        Ok(())
    }
}

/// Lexes one physical line into `out`; true when it ends with a continuation backslash.
fn lex_line(
    file: &Arc<str>,
    line_no: u32,
    raw: &str,
    line_id: u64,
    out: &mut Vec<Token>,
) -> Result<bool, ConfigError> {
    let pos = |col: usize| Pos {
        file: file.clone(),
        line: line_no,
        col: u32::try_from(col + 1).unwrap_or(u32::MAX),
    };
    let chars: Vec<char> = raw.chars().collect();
    let mut word: Option<(String, usize)> = None;
    let mut quote: Option<(char, usize)> = None;
    let mut i = 0;
    let mut continues = false;
    let flush = |word: &mut Option<(String, usize)>, out: &mut Vec<Token>| {
        if let Some((text, col)) = word.take() {
            out.push(Token {
                kind: TokenKind::Word(text),
                pos: pos(col),
                line: line_id,
            });
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if let Some((q, _)) = quote {
            if c == q {
                quote = None;
            } else if c == '\\' {
                let (ch, used) = unescape(&chars[i + 1..]);
                if let Some((text, _)) = word.as_mut() {
                    text.extend(ch);
                }
                i += used;
            } else if let Some((text, _)) = word.as_mut() {
                text.push(c);
            }
            i += 1;
            continue;
        }
        match c {
            '#' | '!' => break,
            '{' | '}' => {
                flush(&mut word, out);
                let kind = if c == '{' {
                    TokenKind::Open
                } else {
                    TokenKind::Close
                };
                out.push(Token {
                    kind,
                    pos: pos(i),
                    line: line_id,
                });
            }
            '"' | '\'' => {
                word.get_or_insert_with(|| (String::new(), i));
                quote = Some((c, i));
            }
            '\\' if chars[i + 1..].iter().all(|c| c.is_whitespace()) => {
                continues = true;
                break;
            }
            c if c.is_whitespace() => flush(&mut word, out),
            c => word.get_or_insert_with(|| (String::new(), i)).0.push(c),
        }
        i += 1;
    }
    if let Some((_, col)) = quote {
        return Err(ConfigError::at(&pos(col), "unterminated quoted string"));
    }
    flush(&mut word, out);
    Ok(continues)
}

/// Reads the escape after a backslash: the characters it stands for and how many input
/// characters it used. `\a \b \E \f \n \r \t \v`, `\nnn` octal, `\xXX` hex, `\cC` control,
/// any other `\C` is C itself.
fn unescape(rest: &[char]) -> (Option<char>, usize) {
    let Some(&c) = rest.first() else {
        return (Some('\\'), 0);
    };
    let simple = match c {
        'a' => Some('\x07'),
        'b' => Some('\x08'),
        'E' => Some('\x1b'),
        'f' => Some('\x0c'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\x0b'),
        _ => None,
    };
    if let Some(s) = simple {
        return (Some(s), 1);
    }
    let number = |digits: &[char], radix: u32| -> (Option<char>, usize) {
        let value = digits
            .iter()
            .try_fold(0u32, |acc, d| d.to_digit(radix).map(|v| acc * radix + v));
        (value.and_then(char::from_u32), digits.len())
    };
    match c {
        '0'..='7' => {
            let n = rest.iter().take(3).take_while(|d| d.is_digit(8)).count();
            number(&rest[..n], 8)
        }
        'x' => {
            let n = rest[1..]
                .iter()
                .take(2)
                .take_while(|d| d.is_ascii_hexdigit())
                .count();
            if n == 0 {
                return (Some('x'), 1);
            }
            let (ch, used) = number(&rest[1..=n], 16);
            (ch, used + 1)
        }
        'c' => match rest.get(1) {
            Some(&k) => (char::from_u32((k.to_ascii_uppercase() as u32) ^ 0x40), 2),
            None => (Some('c'), 1),
        },
        other => (Some(other), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut w = Vec::new();
        lex_str("t.conf", text, &mut w)
            .unwrap()
            .into_iter()
            .map(|t| match t.kind {
                TokenKind::Word(s) => s,
                TokenKind::Open => "{".into(),
                TokenKind::Close => "}".into(),
            })
            .collect()
    }

    #[test]
    fn braces_glued_and_comments() {
        assert_eq!(
            words("virtual_server 1.2.3.4 80{ # comment {\n  lb_algo rr ! more\n}"),
            ["virtual_server", "1.2.3.4", "80", "{", "lb_algo", "rr", "}"]
        );
    }

    #[test]
    fn quotes_join_and_escape() {
        assert_eq!(
            words(r#"a"b c"d 'e f' "x\"y\tz" "#),
            ["ab cd", "e f", "x\"y\tz"]
        );
        assert_eq!(
            words(r#"notify_up "/bin/x 'a b' # not a comment""#),
            ["notify_up", "/bin/x 'a b' # not a comment"]
        );
        assert_eq!(words(r#""\x41\101\cA""#), ["AA\u{1}"]);
    }

    #[test]
    fn positions_and_logical_lines() {
        let mut w = Vec::new();
        let toks = lex_str("t.conf", "a b \\\n  c\nd", &mut w).unwrap();
        let pos: Vec<_> = toks
            .iter()
            .map(|t| (t.pos.line, t.pos.col, t.line))
            .collect();
        assert_eq!(pos, [(1, 1, 0), (1, 3, 0), (2, 3, 0), (3, 1, 1)]);
    }

    #[test]
    fn unterminated_quote() {
        let mut w = Vec::new();
        let err = lex_str("t.conf", "x\n  a \"bc", &mut w).unwrap_err();
        assert_eq!(err.to_string(), "t.conf:2:5: unterminated quoted string");
    }

    #[test]
    fn fifos_and_exponential_includes_are_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("rvs-lex-hostile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A FIFO nobody writes to: opening it to read would block for ever.
        let fifo = dir.join("pipe.conf");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let main = dir.join("main.conf");
        std::fs::write(&main, "x\ninclude pipe.conf\n").unwrap();
        let mut w = Vec::new();
        let err = lex_file(&main, &mut w).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("not a regular file"), "{err}");
        let err = lex_file(&fifo, &mut w).unwrap_err();
        assert!(err.message.contains("not a regular file"), "{err}");

        // Each level includes the next twice: 2^24 copies of the last file, were it read.
        for level in 0..24 {
            let next = format!("l{}.conf", level + 1);
            let text = format!("include {next}\ninclude {next}\n");
            std::fs::write(dir.join(format!("l{level}.conf")), text).unwrap();
        }
        std::fs::write(dir.join("l24.conf"), "y 1\n").unwrap();
        let err = lex_file(&dir.join("l0.conf"), &mut w).unwrap_err();
        assert!(err.message.contains("more than 4096 files read"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn include_directory_is_literal_and_patterns_are_checked() {
        let dir = std::env::temp_dir().join(format!("rvs-lex-[{}]", std::process::id()));
        std::fs::create_dir_all(dir.join("d")).unwrap();
        std::fs::write(dir.join("d/a.inc"), "a").unwrap();
        std::fs::write(dir.join("d/b.inc"), "b").unwrap();
        let main = dir.join("main.conf");
        std::fs::write(&main, "x\ninclude d/*.inc\ninclude d/[.inc\n").unwrap();
        let mut w = Vec::new();
        let err = lex_file(&main, &mut w).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(
            err.message.starts_with("invalid include pattern 'd/[.inc'"),
            "{err}"
        );
        std::fs::write(&main, "x\ninclude d/*.inc\n").unwrap();
        let toks = lex_file(&main, &mut w).unwrap();
        let files: Vec<String> = toks
            .iter()
            .map(|t| t.pos.file.rsplit('/').next().unwrap().to_owned())
            .collect();
        assert_eq!(files, ["main.conf", "a.inc", "b.inc"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
