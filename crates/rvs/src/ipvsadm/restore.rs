//! The lines of `-R`, split as ipvsadm's `config_stream_read` splits them.
//!
//! Its quirks are kept because restore files depend on them: tokens are runs of anything but
//! space, TAB, CR and LF (at most 4096 bytes each); a token that is exactly `ipvsadm` (or, for
//! rvs, `rvsadm`) is dropped; `#` starts no comment; and a last line without LF is dropped when
//! it ends in two or more whitespace characters (its scanner meets EOF while skipping them).

use std::io::{self, BufRead};

const MAX_TOKEN: usize = 4096;

fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Reads restore lines from a byte stream.
pub struct ConfigStream<'a> {
    input: &'a mut dyn BufRead,
}

impl<'a> ConfigStream<'a> {
    pub fn new(input: &'a mut dyn BufRead) -> Self {
        ConfigStream { input }
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(self.input.fill_buf()?.first().copied())
    }

    fn bump(&mut self) {
        self.input.consume(1);
    }

    /// The tokens of the next line (possibly none), or `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<Vec<String>>> {
        let mut tokens = Vec::new();
        loop {
            let Some(first) = self.peek()? else {
                return Ok((!tokens.is_empty()).then_some(tokens));
            };
            if is_separator(first) {
                // Skip blanks up to the end of the line; the input ending here loses the line.
                loop {
                    match self.peek()? {
                        None => return Ok(None),
                        Some(b'\n') => {
                            self.bump();
                            return Ok(Some(tokens));
                        }
                        Some(b' ' | b'\t' | b'\r') => self.bump(),
                        Some(_) => break,
                    }
                }
                continue;
            }
            let mut token = Vec::new();
            while let Some(b) = self.peek()? {
                if is_separator(b) || token.len() == MAX_TOKEN {
                    break;
                }
                token.push(b);
                self.bump();
            }
            let token = String::from_utf8_lossy(&token).into_owned();
            if token != "ipvsadm" && token != "rvsadm" {
                tokens.push(token);
            }
            // The one separator after the token: a newline ends the line.
            match self.peek()? {
                Some(b'\n') => {
                    self.bump();
                    return Ok(Some(tokens));
                }
                Some(b) if is_separator(b) => self.bump(),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &str) -> Vec<Vec<String>> {
        let mut bytes = input.as_bytes();
        let mut stream = ConfigStream::new(&mut bytes);
        let mut out = Vec::new();
        while let Some(line) = stream.next_line().unwrap() {
            out.push(line);
        }
        out
    }

    fn v(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn splitting() {
        assert_eq!(
            lines("-A -t 1.2.3.4:80\n\n  \t\n-a\t-t  1.2.3.4:80 -r 10.0.0.1\r\n"),
            vec![
                v(&["-A", "-t", "1.2.3.4:80"]),
                v(&[]),
                v(&[]),
                v(&["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.1"])
            ]
        );
        assert_eq!(
            lines("ipvsadm -C ipvsadm\nrvsadm -L"),
            vec![v(&["-C"]), v(&["-L"])]
        );
        assert_eq!(lines("-C # comment\n"), vec![v(&["-C", "#", "comment"])]);
        assert_eq!(lines(""), Vec::<Vec<String>>::new());
        assert_eq!(lines("\n"), vec![v(&[])]);
    }

    #[test]
    fn last_line_without_newline() {
        assert_eq!(lines("-C"), vec![v(&["-C"])]);
        assert_eq!(lines("-C "), vec![v(&["-C"])]);
        assert_eq!(
            lines("-L\n-C  "),
            vec![v(&["-L"])],
            "two trailing blanks lose the line"
        );
        assert_eq!(lines("-L\n-C \t"), vec![v(&["-L"])]);
        assert_eq!(lines("-L\nipvsadm"), vec![v(&["-L"])]);
    }

    #[test]
    fn long_tokens_are_split() {
        let long = "x".repeat(MAX_TOKEN + 3);
        let got = lines(&format!("-L {long}\n"));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0][1].len(), MAX_TOKEN);
        assert_eq!(got[0][2], "xxx");
    }
}
