//! The sans-IO core of the calculator protocol: one line in, one line out.
//!
//! - [`Request::parse`] recognises one line (without its `\n`);
//! - [`Session::handle`] runs the transaction state machine and returns the [`Reply`];
//! - [`Reply::encode`] writes the reply line;
//! - [`Answer::parse`] is the client's side: what a reply line says.
//!
//! The arithmetic and the number syntax live in [`super::number`].
//!
//! ```text
//!             operand (OK)                 operand (OK)
//!   ┌──────┐ ─────────────▶ ┌──────────┐ ─────────────▶ ┌───────────┐
//!   │ none │                │ one held │                │ two held  │── operand ──▶ FALLO,
//!   └──────┘ ◀───────────── └──────────┘                └───────────┘   nothing changes
//!      ▲      any operator:       │ any operator:             │
//!      │      OK <result> or      │ OK <result> or FALLO      │ any operator
//!      └──────FALLO ──────────────┴───────────────────────────┘
//! ```
//!
//! A refused operand (not a number, too many digits, a third operand), an empty line and an
//! over-long line change nothing. Every operator line, known or not, answered `OK` or
//! `FALLO`, ends the transaction and clears the held operands.

use std::fmt;

use bigdecimal::BigDecimal;
use bytes::{BufMut, BytesMut};

use super::number::{self, CalcError, NumberError};

/// Longest line accepted, in bytes, not counting its `\n` or `\r\n`.
pub const MAX_LINE: usize = 1024;
/// Operands a transaction may hold.
pub const MAX_OPERANDS: usize = 2;

/// One request line, recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A number to hold.
    Operand(BigDecimal),
    /// An operator to apply to the held numbers.
    Op(Operator),
    /// `QUIT`: say goodbye and close.
    Quit,
    /// A line with nothing on it but ASCII whitespace.
    Empty,
}

/// Why a line is not a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// More than [`MAX_LINE`] bytes.
    #[error("line too long")]
    LineTooLong,
    /// Starts like a number (a digit, `.`, or a sign then a digit or `.`) but is not one.
    #[error("not a number")]
    NotANumber,
    /// A number with more than [`number::MAX_DIGITS`] digits written out.
    #[error("too many digits")]
    TooManyDigits,
    /// Any other word.
    #[error("unknown operator")]
    UnknownOperator,
}

impl From<NumberError> for ParseError {
    fn from(e: NumberError) -> Self {
        match e {
            NumberError::TooManyDigits => ParseError::TooManyDigits,
            _ => ParseError::NotANumber,
        }
    }
}

impl Request {
    /// Recognises one line, given without its `\n` (a trailing `\r` is removed here, so CRLF
    /// works too). ASCII whitespace (spaces, tabs) around the token is ignored.
    ///
    /// A token that starts like a number (a digit or `.`, optionally after `+` or `-`) is an
    /// operand, and refused as [`ParseError::NotANumber`] if it is not a whole number
    /// (`1x`, `1.2.3`). Any other token is an operator word, matched without regard to ASCII
    /// case (`QUIT`, `quit`, `Sqrt`), or [`ParseError::UnknownOperator`]. So `-` and `+` alone
    /// are operators and `-2` is a number.
    ///
    /// The line limit is checked first, before anything else is looked at.
    pub fn parse(line: &[u8]) -> Result<Request, ParseError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_LINE {
            return Err(ParseError::LineTooLong);
        }
        let token = line.trim_ascii();
        if token.is_empty() {
            return Ok(Request::Empty);
        }
        if looks_numeric(token) {
            return Ok(Request::Operand(number::parse(token)?));
        }
        if token.eq_ignore_ascii_case(b"QUIT") {
            return Ok(Request::Quit);
        }
        Operator::parse(token)
            .map(Request::Op)
            .ok_or(ParseError::UnknownOperator)
    }
}

/// A digit or `.` first, possibly after one sign.
fn looks_numeric(token: &[u8]) -> bool {
    let body = match token.first() {
        Some(b'+' | b'-') => &token[1..],
        _ => token,
    };
    matches!(body.first(), Some(b) if b.is_ascii_digit() || *b == b'.')
}

/// The operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`, rounded to [`number::PRECISION`] significant digits.
    Div,
    /// `%`, remainder with the sign of the dividend.
    Rem,
    /// `^`, integer exponent.
    Pow,
    /// `neg`: change sign.
    Neg,
    /// `abs`: absolute value.
    Abs,
    /// `sqrt`: square root, rounded to [`number::PRECISION`] significant digits.
    Sqrt,
}

impl Operator {
    /// Every operator, binary ones first.
    pub const ALL: [Operator; 9] = [
        Operator::Add,
        Operator::Sub,
        Operator::Mul,
        Operator::Div,
        Operator::Rem,
        Operator::Pow,
        Operator::Neg,
        Operator::Abs,
        Operator::Sqrt,
    ];

    /// The operator a token names (words without regard to ASCII case).
    pub fn parse(token: &[u8]) -> Option<Operator> {
        Operator::ALL
            .into_iter()
            .find(|op| token.eq_ignore_ascii_case(op.symbol().as_bytes()))
    }

    /// How it is written on the wire.
    pub fn symbol(self) -> &'static str {
        match self {
            Operator::Add => "+",
            Operator::Sub => "-",
            Operator::Mul => "*",
            Operator::Div => "/",
            Operator::Rem => "%",
            Operator::Pow => "^",
            Operator::Neg => "neg",
            Operator::Abs => "abs",
            Operator::Sqrt => "sqrt",
        }
    }

    /// How many operands it needs: exactly this many must be held.
    pub fn arity(self) -> usize {
        match self {
            Operator::Neg | Operator::Abs | Operator::Sqrt => 1,
            _ => 2,
        }
    }

    /// Applies the operator to `operands` (in the order they were sent).
    pub fn apply(self, operands: &[BigDecimal]) -> Result<BigDecimal, Reason> {
        let result = match (self, operands) {
            (Operator::Add, [a, b]) => number::add(a, b),
            (Operator::Sub, [a, b]) => number::sub(a, b),
            (Operator::Mul, [a, b]) => number::mul(a, b),
            (Operator::Div, [a, b]) => number::div(a, b),
            (Operator::Rem, [a, b]) => number::rem(a, b),
            (Operator::Pow, [a, b]) => number::pow(a, b),
            (Operator::Neg, [a]) => number::neg(a),
            (Operator::Abs, [a]) => number::abs(a),
            (Operator::Sqrt, [a]) => number::sqrt(a),
            _ if self.arity() == 2 => return Err(Reason::NeedsTwoOperands),
            _ => return Err(Reason::NeedsOneOperand),
        };
        result.map_err(Reason::from)
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// Why the server answered `FALLO`: the text after `FALLO ` on the wire. Every reason is a
/// short, fixed, lowercase ASCII phrase in English; none repeats what the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The line was empty or only ASCII whitespace. Nothing changes.
    EmptyLine,
    /// The line had more than [`MAX_LINE`] bytes. Nothing changes.
    LineTooLong,
    /// An operand that is not a number. Nothing changes.
    NotANumber,
    /// An operand with more than [`number::MAX_DIGITS`] digits written out. Nothing changes.
    TooManyDigits,
    /// An operand while two are already held. Nothing changes.
    TooManyOperands,
    /// A binary operator without exactly two operands held.
    NeedsTwoOperands,
    /// A unary operator without exactly one operand held.
    NeedsOneOperand,
    /// Division or remainder by zero, or zero to a negative power.
    DivisionByZero,
    /// The result would have more than [`number::MAX_DIGITS`] digits written out.
    ResultTooLarge,
    /// `^` with an exponent that is not an integer.
    ExponentNotInteger,
    /// `^` with `|exponent| >` [`number::MAX_EXPONENT`].
    ExponentTooLarge,
    /// `sqrt` of a negative number.
    NegativeSquareRoot,
    /// A word that is not an operator (it still ends the transaction).
    UnknownOperator,
    /// The client sent nothing for the idle timeout; the server closes after this line.
    IdleTimeout,
}

impl Reason {
    /// The wire text.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::EmptyLine => "empty line",
            Reason::LineTooLong => "line too long",
            Reason::NotANumber => "not a number",
            Reason::TooManyDigits => "too many digits",
            Reason::TooManyOperands => "too many operands",
            Reason::NeedsTwoOperands => "needs two operands",
            Reason::NeedsOneOperand => "needs one operand",
            Reason::DivisionByZero => "division by zero",
            Reason::ResultTooLarge => "result too large",
            Reason::ExponentNotInteger => "exponent must be an integer",
            Reason::ExponentTooLarge => "exponent too large",
            Reason::NegativeSquareRoot => "square root of a negative number",
            Reason::UnknownOperator => "unknown operator",
            Reason::IdleTimeout => "idle timeout",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ParseError> for Reason {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::LineTooLong => Reason::LineTooLong,
            ParseError::NotANumber => Reason::NotANumber,
            ParseError::TooManyDigits => Reason::TooManyDigits,
            ParseError::UnknownOperator => Reason::UnknownOperator,
        }
    }
}

impl From<CalcError> for Reason {
    fn from(e: CalcError) -> Self {
        match e {
            CalcError::DivisionByZero => Reason::DivisionByZero,
            CalcError::ResultTooLarge => Reason::ResultTooLarge,
            CalcError::ExponentNotInteger => Reason::ExponentNotInteger,
            CalcError::ExponentTooLarge => Reason::ExponentTooLarge,
            CalcError::NegativeSquareRoot => Reason::NegativeSquareRoot,
        }
    }
}

/// The server's answer to one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `OK`: the operand is held.
    Accepted,
    /// `OK <result>`: the operator's result, written out in full.
    Value(BigDecimal),
    /// `OK bye`: the answer to `QUIT`; the server then closes.
    Bye,
    /// `FALLO <reason>`.
    Fallo(Reason),
}

impl Reply {
    /// Appends the reply line, `\n` included. Always ASCII.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use socklab::calc::proto::{Reason, Reply};
    /// let mut wire = BytesMut::new();
    /// Reply::Accepted.encode(&mut wire);
    /// Reply::Fallo(Reason::DivisionByZero).encode(&mut wire);
    /// assert_eq!(&wire[..], b"OK\nFALLO division by zero\n");
    /// ```
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            Reply::Accepted => dst.put_slice(b"OK\n"),
            Reply::Value(v) => {
                let text = number::format(v);
                dst.reserve(text.len() + 4);
                dst.put_slice(b"OK ");
                dst.put_slice(text.as_bytes());
                dst.put_u8(b'\n');
            }
            Reply::Bye => dst.put_slice(b"OK bye\n"),
            Reply::Fallo(reason) => {
                dst.put_slice(b"FALLO ");
                dst.put_slice(reason.as_str().as_bytes());
                dst.put_u8(b'\n');
            }
        }
    }

    /// True for the reply after which the server closes the connection.
    pub fn closes(&self) -> bool {
        matches!(self, Reply::Bye | Reply::Fallo(Reason::IdleTimeout))
    }
}

/// One connection's transaction: the operands held so far (at most [`MAX_OPERANDS`]).
///
/// ```
/// use bytes::BytesMut;
/// use socklab::calc::proto::Session;
/// let mut session = Session::default();
/// let mut wire = BytesMut::new();
/// for line in [&b"0.1"[..], b"0.2\r", b"+", b"7", b"0", b"/", b"QUIT"] {
///     session.handle_line(line).encode(&mut wire);
/// }
/// assert_eq!(&wire[..], &b"OK\nOK\nOK 0.3\nOK\nOK\nFALLO division by zero\nOK bye\n"[..]);
/// assert!(session.operands().is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Session {
    operands: Vec<BigDecimal>,
}

impl Session {
    /// A session holding nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The operands held, in the order they arrived.
    pub fn operands(&self) -> &[BigDecimal] {
        &self.operands
    }

    /// Parses and handles one line (without its `\n`). A line that does not parse is
    /// answered `FALLO`; it changes nothing, except an unknown operator, which ends the
    /// transaction like any operator.
    pub fn handle_line(&mut self, line: &[u8]) -> Reply {
        match Request::parse(line) {
            Ok(request) => self.handle(request),
            Err(ParseError::UnknownOperator) => {
                self.operands.clear();
                Reply::Fallo(Reason::UnknownOperator)
            }
            Err(e) => Reply::Fallo(e.into()),
        }
    }

    /// Handles one request.
    pub fn handle(&mut self, request: Request) -> Reply {
        match request {
            Request::Empty => Reply::Fallo(Reason::EmptyLine),
            Request::Quit => {
                self.operands.clear();
                Reply::Bye
            }
            Request::Operand(_) if self.operands.len() >= MAX_OPERANDS => {
                Reply::Fallo(Reason::TooManyOperands)
            }
            // An operand built through the library rather than parsed from a line gets the
            // same limit.
            Request::Operand(x) if !number::fits(&x) => Reply::Fallo(Reason::TooManyDigits),
            Request::Operand(x) => {
                self.operands.push(x);
                Reply::Accepted
            }
            Request::Op(op) => {
                let operands = std::mem::take(&mut self.operands);
                match op.apply(&operands) {
                    Ok(v) => Reply::Value(v),
                    Err(reason) => Reply::Fallo(reason),
                }
            }
        }
    }
}

/// A reply line as the client sees it, from any server (its `FALLO` reasons may be free text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `OK`.
    Accepted,
    /// `OK <text>` (other than `OK bye`): a result.
    Value(String),
    /// `OK bye`.
    Bye,
    /// `FALLO` or `FALLO <reason>`.
    Fallo(String),
}

/// A reply line that is neither `OK…` nor `FALLO…`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line:?} is not an OK or FALLO reply")]
pub struct BadAnswer {
    /// The line, lossily decoded.
    pub line: String,
}

impl Answer {
    /// Reads one reply line (without its `\n`; a trailing `\r` is removed).
    ///
    /// ```
    /// use socklab::calc::proto::Answer;
    /// assert_eq!(Answer::parse(b"OK 7"), Ok(Answer::Value("7".into())));
    /// assert_eq!(Answer::parse(b"FALLO division by zero\r"),
    ///            Ok(Answer::Fallo("division by zero".into())));
    /// assert!(Answer::parse(b"7").is_err());
    /// ```
    pub fn parse(line: &[u8]) -> Result<Answer, BadAnswer> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(line);
        if text == "OK" {
            return Ok(Answer::Accepted);
        }
        if text == "OK bye" {
            return Ok(Answer::Bye);
        }
        if let Some(value) = text.strip_prefix("OK ") {
            return Ok(Answer::Value(value.to_string()));
        }
        if text == "FALLO" {
            return Ok(Answer::Fallo(String::new()));
        }
        if let Some(reason) = text.strip_prefix("FALLO ") {
            return Ok(Answer::Fallo(reason.to_string()));
        }
        Err(BadAnswer {
            line: text.into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn n(s: &str) -> BigDecimal {
        number::parse(s.as_bytes()).unwrap()
    }

    fn wire(replies: &[Reply]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for r in replies {
            r.encode(&mut out);
        }
        out.to_vec()
    }

    /// Runs lines through a fresh session and returns the reply bytes.
    fn converse(lines: &[&str]) -> String {
        let mut session = Session::new();
        let mut out = BytesMut::new();
        for line in lines {
            session.handle_line(line.as_bytes()).encode(&mut out);
        }
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn test_parse() {
        let cases: [(&[u8], Result<Request, ParseError>); 16] = [
            (b"3", Ok(Request::Operand(n("3")))),
            (b"-2.5\r", Ok(Request::Operand(n("-2.5")))),
            (b"  1e3\t", Ok(Request::Operand(n("1000")))),
            (b"+", Ok(Request::Op(Operator::Add))),
            (b"-", Ok(Request::Op(Operator::Sub))),
            (b"^", Ok(Request::Op(Operator::Pow))),
            (b"SQRT", Ok(Request::Op(Operator::Sqrt))),
            (b"neg\r", Ok(Request::Op(Operator::Neg))),
            (b"QUIT", Ok(Request::Quit)),
            (b"quit\r", Ok(Request::Quit)),
            (b"", Ok(Request::Empty)),
            (b" \t\r", Ok(Request::Empty)),
            (b"3x", Err(ParseError::NotANumber)),
            (b"3 4", Err(ParseError::NotANumber)),
            (b"1e10000", Err(ParseError::TooManyDigits)),
            (b"plus", Err(ParseError::UnknownOperator)),
        ];
        for (line, expected) in cases {
            assert_eq!(
                Request::parse(line),
                expected,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn line_limit_counts_bytes_before_the_terminator() {
        let max = "1".repeat(MAX_LINE);
        assert!(matches!(
            Request::parse(max.as_bytes()),
            Ok(Request::Operand(_))
        ));
        assert!(matches!(
            Request::parse(format!("{max}\r").as_bytes()),
            Ok(Request::Operand(_))
        ));
        let over = format!("{max}1");
        assert_eq!(
            Request::parse(over.as_bytes()),
            Err(ParseError::LineTooLong)
        );
        let spaces = " ".repeat(MAX_LINE + 1);
        assert_eq!(
            Request::parse(spaces.as_bytes()),
            Err(ParseError::LineTooLong)
        );
    }

    #[test]
    fn test_emit() {
        let replies = [
            Reply::Accepted,
            Reply::Value(n("7")),
            Reply::Value(n("-0.5")),
            Reply::Value(n("1e3")),
            Reply::Bye,
            Reply::Fallo(Reason::DivisionByZero),
            Reply::Fallo(Reason::IdleTimeout),
        ];
        assert_eq!(
            wire(&replies),
            b"OK\nOK 7\nOK -0.5\nOK 1000\nOK bye\nFALLO division by zero\nFALLO idle timeout\n"
        );
    }

    #[test]
    fn answers_parse_back_from_replies() {
        let cases = [
            (Reply::Accepted, Answer::Accepted),
            (Reply::Value(n("2.5")), Answer::Value("2.5".into())),
            (Reply::Bye, Answer::Bye),
            (
                Reply::Fallo(Reason::NeedsTwoOperands),
                Answer::Fallo("needs two operands".into()),
            ),
        ];
        for (reply, answer) in cases {
            let line = wire(&[reply]);
            assert_eq!(Answer::parse(&line[..line.len() - 1]), Ok(answer));
        }
        assert_eq!(Answer::parse(b"FALLO"), Ok(Answer::Fallo(String::new())));
        assert!(Answer::parse(b"ok").is_err());
        assert!(Answer::parse(b"OKAY").is_err());
        assert!(Answer::parse(b"").is_err());
    }

    #[test]
    fn a_transaction_from_the_issue() {
        assert_eq!(converse(&["3", "4", "+"]), "OK\nOK\nOK 7\n");
        assert_eq!(converse(&["0.1", "0.2", "+"]), "OK\nOK\nOK 0.3\n");
        assert_eq!(
            converse(&["123456789012345678901234567890", "1", "+"]),
            "OK\nOK\nOK 123456789012345678901234567891\n"
        );
    }

    #[test]
    fn refused_operand_changes_nothing_and_can_be_corrected() {
        assert_eq!(
            converse(&["3", "4x", "4", "*"]),
            "OK\nFALLO not a number\nOK\nOK 12\n"
        );
        assert_eq!(
            converse(&["1", "2", "3", "-"]),
            "OK\nOK\nFALLO too many operands\nOK -1\n"
        );
        assert_eq!(
            converse(&["1", "1e99999", "", "2", "+"]),
            "OK\nFALLO too many digits\nFALLO empty line\nOK\nOK 3\n"
        );
    }

    #[test]
    fn every_operator_ends_the_transaction() {
        assert_eq!(
            converse(&["1", "0", "/", "5", "neg"]),
            "OK\nOK\nFALLO division by zero\nOK\nOK -5\n"
        );
        assert_eq!(
            converse(&["1", "+", "2", "3", "+"]),
            "OK\nFALLO needs two operands\nOK\nOK\nOK 5\n"
        );
        assert_eq!(
            converse(&["1", "2", "sqrt", "9", "sqrt"]),
            "OK\nOK\nFALLO needs one operand\nOK\nOK 3\n"
        );
        assert_eq!(
            converse(&["1", "2", "max", "1", "2", "+"]),
            "OK\nOK\nFALLO unknown operator\nOK\nOK\nOK 3\n"
        );
        assert_eq!(converse(&["neg"]), "FALLO needs one operand\n");
    }

    #[test]
    fn every_operator_by_example() {
        let cases = [
            (["7", "2", "+"], "OK 9"),
            (["7", "2", "-"], "OK 5"),
            (["7", "2", "*"], "OK 14"),
            (["7", "2", "/"], "OK 3.5"),
            (["-7", "2", "%"], "OK -1"),
            (["2", "-2", "^"], "OK 0.25"),
            (["2.5", "2", "^"], "OK 6.25"),
            (["2", "0.5", "^"], "FALLO exponent must be an integer"),
            (["9", "99999", "^"], "FALLO result too large"),
            (["9", "1e6", "^"], "FALLO exponent too large"),
        ];
        for (lines, last) in cases {
            let out = converse(&lines);
            assert_eq!(out, format!("OK\nOK\n{last}\n"), "{lines:?}");
        }
        assert_eq!(converse(&["-4", "abs"]), "OK\nOK 4\n");
        assert_eq!(
            converse(&["-4", "sqrt"]),
            "OK\nFALLO square root of a negative number\n"
        );
        assert_eq!(converse(&["2.25", "Sqrt"]), "OK\nOK 1.5\n");
    }

    #[test]
    fn quit_in_any_case_says_bye_and_closes() {
        assert_eq!(converse(&["1", "QUIT"]), "OK\nOK bye\n");
        assert_eq!(converse(&["quit"]), "OK bye\n");
        assert!(Reply::Bye.closes());
        assert!(Reply::Fallo(Reason::IdleTimeout).closes());
        assert!(!Reply::Fallo(Reason::LineTooLong).closes());
    }

    #[test]
    fn library_operands_get_the_digit_limit_too() {
        let mut s = Session::new();
        let huge = BigDecimal::new(1.into(), -20_000);
        assert_eq!(
            s.handle(Request::Operand(huge)),
            Reply::Fallo(Reason::TooManyDigits)
        );
        assert!(s.operands().is_empty());
    }

    fn line() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            "-?[0-9]{1,20}(\\.[0-9]{0,10})?(e-?[0-9]{1,5})?".prop_map(String::into_bytes),
            prop_oneof![
                Just("+"),
                Just("-"),
                Just("*"),
                Just("/"),
                Just("%"),
                Just("^"),
                Just("neg"),
                Just("abs"),
                Just("sqrt"),
                Just("QUIT"),
                Just(""),
                Just("x"),
                Just("1x"),
            ]
            .prop_map(|s| s.as_bytes().to_vec()),
            proptest::collection::vec(any::<u8>(), 0..40),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_line_never_panics(line in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let mut session = Session::new();
            let mut out = BytesMut::new();
            session.handle_line(&line).encode(&mut out);
            prop_assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
            prop_assert!(out.is_ascii());
        }

        #[test]
        fn fuzz_entry_point_holds_on_any_lines(lines in proptest::collection::vec(line(), 0..30)) {
            crate::fuzzing::calc_line(&lines.join(&b'\n'));
        }

        #[test]
        fn state_machine_invariants(lines in proptest::collection::vec(line(), 0..30)) {
            let mut session = Session::new();
            for line in lines {
                let before = session.operands().to_vec();
                let request = Request::parse(&line);
                let reply = session.handle_line(&line);
                let after = session.operands();
                prop_assert!(after.len() <= MAX_OPERANDS);
                match (request, &reply) {
                    (Ok(Request::Operand(x)), Reply::Accepted) => {
                        prop_assert_eq!(after.len(), before.len() + 1);
                        prop_assert_eq!(&after[..before.len()], &before[..]);
                        prop_assert_eq!(&after[before.len()], &x);
                    }
                    (Ok(Request::Operand(_)), Reply::Fallo(_)) => prop_assert_eq!(after, &before[..]),
                    (Ok(Request::Op(_)) | Err(ParseError::UnknownOperator), r) => {
                        prop_assert!(after.is_empty());
                        prop_assert!(matches!(r, Reply::Value(_) | Reply::Fallo(_)));
                    }
                    (Ok(Request::Quit), r) => prop_assert_eq!(r, &Reply::Bye),
                    (Ok(Request::Empty) | Err(_), r) => {
                        prop_assert_eq!(after, &before[..]);
                        prop_assert!(matches!(r, Reply::Fallo(_)));
                    }
                    (request, reply) => prop_assert!(false, "{:?} got {:?}", request, reply),
                }
            }
        }
    }
}
