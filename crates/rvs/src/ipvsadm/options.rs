//! A tokenizer that follows popt 1.19's `poptGetNextOpt`, as ipvsadm is linked against it.
//!
//! Hand-written on purpose: no Rust crate implements popt's rules, and ipvsadm's behaviour (and
//! its messages) depend on them:
//! - a single dash starts a cluster of short options; an option that takes an argument takes
//!   the rest of the cluster (less one leading `=`), or else the next word, even one starting
//!   with `-`;
//! - an optional argument is taken from the next word only when that word does not start with `-`;
//! - `--name=value` for long options, with exact names (no abbreviations);
//! - non-option words ("leftovers") may sit anywhere, `--` makes all later words leftovers, and
//!   with POSIXLY_CORRECT the first leftover does;
//! - on an error, [`Popt::bad_option`] names the whole argv word used up last (`-Lq`, or the
//!   argument word of the option before).

/// Whether an option takes an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    None,
    Required,
    Optional,
}

/// One row of an option table.
#[derive(Clone, Copy, Debug)]
pub struct OptionDef<T> {
    pub long: &'static str,
    pub short: Option<u8>,
    pub arg: ArgKind,
    pub id: T,
}

/// The popt errors that can happen with a table like ipvsadm's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoptError {
    /// POPT_ERROR_BADOPT
    UnknownOption,
    /// POPT_ERROR_NOARG
    MissingArgument,
    /// POPT_ERROR_UNWANTEDARG
    UnwantedArgument,
}

impl PoptError {
    /// `poptStrerror`.
    pub fn text(self) -> &'static str {
        match self {
            PoptError::UnknownOption => "unknown option",
            PoptError::MissingArgument => "missing argument",
            PoptError::UnwantedArgument => "option does not take an argument",
        }
    }
}

/// A parsing context over `argv` (whose element 0 is the program name, as for popt).
pub struct Popt<'a, T> {
    table: &'a [OptionDef<T>],
    argv: &'a [String],
    /// Index of the next argv word to look at.
    next: usize,
    /// Inside a short-option cluster: (argv index, byte offset of the next option letter).
    cluster: Option<(usize, usize)>,
    rest_are_leftovers: bool,
    posixly_correct: bool,
    leftovers: Vec<&'a str>,
    next_leftover: usize,
}

impl<'a, T: Copy> Popt<'a, T> {
    pub fn new(table: &'a [OptionDef<T>], argv: &'a [String], posixly_correct: bool) -> Self {
        Popt {
            table,
            argv,
            next: 1,
            cluster: None,
            rest_are_leftovers: false,
            posixly_correct,
            leftovers: Vec::new(),
            next_leftover: 0,
        }
    }

    /// The next option with its argument, `None` when the words are used up.
    pub fn next_opt(&mut self) -> Option<Result<(T, Option<&'a str>), PoptError>> {
        loop {
            let mut long_arg: Option<&'a str> = None;
            let def = match self.cluster.take() {
                Some(pos) => match self.short_option(pos) {
                    Ok(def) => def,
                    Err(e) => return Some(Err(e)),
                },
                None => {
                    let word: &'a str = self.argv.get(self.next)?;
                    self.next += 1;
                    if self.rest_are_leftovers || !word.starts_with('-') || word == "-" {
                        if self.posixly_correct {
                            self.rest_are_leftovers = true;
                        }
                        self.leftovers.push(word);
                        continue;
                    }
                    if word == "--" {
                        self.rest_are_leftovers = true;
                        continue;
                    }
                    match word.strip_prefix("--") {
                        Some(body) => {
                            let (name, value) = match body.split_once('=') {
                                Some((name, value)) => (name, Some(value)),
                                None => (body, None),
                            };
                            let Some(def) = self.table.iter().find(|d| d.long == name) else {
                                return Some(Err(PoptError::UnknownOption));
                            };
                            long_arg = value;
                            def
                        }
                        None => match self.short_option((self.next - 1, 1)) {
                            Ok(def) => def,
                            Err(e) => return Some(Err(e)),
                        },
                    }
                }
            };
            return Some(self.argument(def, long_arg).map(|arg| (def.id, arg)));
        }
    }

    /// Looks up the option letter at `pos` and leaves the rest of the cluster for later.
    fn short_option(
        &mut self,
        (index, offset): (usize, usize),
    ) -> Result<&'a OptionDef<T>, PoptError> {
        let word = self.argv[index].as_bytes();
        let letter = word[offset];
        let def = self
            .table
            .iter()
            .find(|d| d.short == Some(letter))
            .ok_or(PoptError::UnknownOption)?;
        if offset + 1 < word.len() {
            self.cluster = Some((index, offset + 1));
        }
        Ok(def)
    }

    fn argument(
        &mut self,
        def: &OptionDef<T>,
        long_arg: Option<&'a str>,
    ) -> Result<Option<&'a str>, PoptError> {
        if def.arg == ArgKind::None {
            if long_arg.is_some() || self.cluster_rest().is_some_and(|r| r.starts_with('=')) {
                return Err(PoptError::UnwantedArgument);
            }
            return Ok(None);
        }
        if long_arg.is_some() {
            return Ok(long_arg);
        }
        if let Some(rest) = self.cluster_rest() {
            self.cluster = None;
            return Ok(Some(rest.strip_prefix('=').unwrap_or(rest)));
        }
        let Some(word) = self.argv.get(self.next) else {
            return match def.arg {
                ArgKind::Optional => Ok(None),
                _ => Err(PoptError::MissingArgument),
            };
        };
        if def.arg == ArgKind::Optional && word.starts_with('-') {
            return Ok(None);
        }
        self.next += 1;
        Ok(Some(word))
    }

    /// What is left of the current short-option cluster (offsets follow ASCII letters, so the
    /// slice is on a character boundary).
    fn cluster_rest(&self) -> Option<&'a str> {
        let (index, offset) = self.cluster?;
        let word: &'a str = &self.argv[index];
        word.get(offset..)
    }

    /// `poptBadOption(ctx, POPT_BADOPTION_NOALIAS)`: the argv word used up last.
    pub fn bad_option(&self) -> &'a str {
        let argv: &'a [String] = self.argv;
        &argv[self.next.saturating_sub(1)]
    }

    /// `poptGetArg`: the next leftover word.
    pub fn next_arg(&mut self) -> Option<&'a str> {
        let arg = self.leftovers.get(self.next_leftover).copied()?;
        self.next_leftover += 1;
        Some(arg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Id {
        L,
        N,
        S,
        P,
        Stats,
    }

    const TABLE: &[OptionDef<Id>] = &[
        OptionDef {
            long: "list",
            short: Some(b'L'),
            arg: ArgKind::None,
            id: Id::L,
        },
        OptionDef {
            long: "numeric",
            short: Some(b'n'),
            arg: ArgKind::None,
            id: Id::N,
        },
        OptionDef {
            long: "scheduler",
            short: Some(b's'),
            arg: ArgKind::Required,
            id: Id::S,
        },
        OptionDef {
            long: "persistent",
            short: Some(b'p'),
            arg: ArgKind::Optional,
            id: Id::P,
        },
        OptionDef {
            long: "stats",
            short: None,
            arg: ArgKind::None,
            id: Id::Stats,
        },
    ];

    type Item = Result<(Id, Option<String>), (PoptError, String)>;

    fn parse(words: &[&str]) -> (Vec<Item>, Vec<String>) {
        parse_with(words, false)
    }

    fn parse_with(words: &[&str], posix: bool) -> (Vec<Item>, Vec<String>) {
        let argv: Vec<String> = std::iter::once("prog")
            .chain(words.iter().copied())
            .map(String::from)
            .collect();
        let mut p = Popt::new(TABLE, &argv, posix);
        let mut items = Vec::new();
        while let Some(r) = p.next_opt() {
            match r {
                Ok((id, arg)) => items.push(Ok((id, arg.map(String::from)))),
                Err(e) => {
                    items.push(Err((e, p.bad_option().to_owned())));
                    break;
                }
            }
        }
        let mut rest = Vec::new();
        while let Some(a) = p.next_arg() {
            rest.push(a.to_owned());
        }
        (items, rest)
    }

    fn ok(id: Id, arg: Option<&str>) -> Item {
        Ok((id, arg.map(String::from)))
    }

    fn err(e: PoptError, bad: &str) -> Item {
        Err((e, bad.to_owned()))
    }

    #[test]
    fn clusters_and_arguments() {
        assert_eq!(parse(&["-Ln"]).0, vec![ok(Id::L, None), ok(Id::N, None)]);
        assert_eq!(
            parse(&["-sp", "rr"]),
            (vec![ok(Id::S, Some("p"))], vec!["rr".into()])
        );
        assert_eq!(parse(&["-ps", "rr"]).0, vec![ok(Id::P, Some("s"))]);
        assert_eq!(parse(&["-p=300"]).0, vec![ok(Id::P, Some("300"))]);
        assert_eq!(parse(&["-s=="]).0, vec![ok(Id::S, Some("="))]);
        assert_eq!(parse(&["-s="]).0, vec![ok(Id::S, Some(""))]);
        assert_eq!(parse(&["-s", "-x"]).0, vec![ok(Id::S, Some("-x"))]);
        assert_eq!(parse(&["--scheduler=rr"]).0, vec![ok(Id::S, Some("rr"))]);
        assert_eq!(
            parse(&["--scheduler", "--stats"]).0,
            vec![ok(Id::S, Some("--stats"))]
        );
    }

    #[test]
    fn optional_argument() {
        assert_eq!(
            parse(&["-p", "-L"]).0,
            vec![ok(Id::P, None), ok(Id::L, None)]
        );
        assert_eq!(parse(&["-p", "10"]).0, vec![ok(Id::P, Some("10"))]);
        assert_eq!(parse(&["-p", ""]).0, vec![ok(Id::P, Some(""))]);
        assert_eq!(parse(&["-p"]).0, vec![ok(Id::P, None)]);
        assert_eq!(parse(&["--persistent"]).0, vec![ok(Id::P, None)]);
    }

    #[test]
    fn leftovers_anywhere() {
        let (items, rest) = parse(&["a", "-L", "-", "b", "--", "-n", "--stats"]);
        assert_eq!(items, vec![ok(Id::L, None)]);
        assert_eq!(rest, vec!["a", "-", "b", "-n", "--stats"]);
        let (items, rest) = parse_with(&["-L", "a", "-n"], true);
        assert_eq!(items, vec![ok(Id::L, None)]);
        assert_eq!(rest, vec!["a", "-n"]);
    }

    #[test]
    fn errors_name_the_last_word() {
        assert_eq!(
            parse(&["-Lq"]).0,
            vec![ok(Id::L, None), err(PoptError::UnknownOption, "-Lq")]
        );
        assert_eq!(
            parse(&["--numer"]).0,
            vec![err(PoptError::UnknownOption, "--numer")]
        );
        assert_eq!(
            parse(&["-L", "-s"]).0[1],
            err(PoptError::MissingArgument, "-s")
        );
        assert_eq!(
            parse(&["--stats=1"]).0,
            vec![err(PoptError::UnwantedArgument, "--stats=1")]
        );
        assert_eq!(
            parse(&["--stats="]).0,
            vec![err(PoptError::UnwantedArgument, "--stats=")]
        );
        assert_eq!(
            parse(&["-Ln="]).0[1],
            err(PoptError::UnwantedArgument, "-Ln=")
        );
        assert_eq!(
            parse(&["-L="]).0,
            vec![err(PoptError::UnwantedArgument, "-L=")]
        );
        assert_eq!(parse(&["-é"]).0, vec![err(PoptError::UnknownOption, "-é")]);
        assert_eq!(parse(&["-1"]).0, vec![err(PoptError::UnknownOption, "-1")]);
        let (items, _) = parse(&["-s", "x", "-Q"]);
        assert_eq!(items[1], err(PoptError::UnknownOption, "-Q"));
    }
}
