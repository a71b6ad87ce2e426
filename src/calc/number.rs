//! Exact decimal numbers for the calculator: parsing, the size limit, the nine operations,
//! rounding and formatting. Sans-IO, like the rest of the core.
//!
//! # What a person expects from a calculator
//!
//! Binary floating point would answer `0.1 0.2 +` with `0.30000000000000004`; a calculator
//! answers `0.3`. So numbers here are decimal: an integer `mag` and a `scale`, meaning
//! `mag × 10^-scale`, with [`BigDecimal`] as the public type. Addition, subtraction,
//! multiplication, negation, absolute value and the remainder are **exact**, whatever the
//! size of the numbers. Only three operations can produce an endless expansion, and they round
//! to [`PRECISION`] (50) significant digits, half to even:
//!
//! - division: `1 3 /` is `0.33333333333333333333333333333333333333333333333333`;
//! - square root: `2 sqrt` is `1.4142135623730950488016887242096980785696718753769`;
//! - a power with a negative exponent, which is a division: `3 -2 ^` is `1/9`.
//!
//! Rounding never removes digits left of the decimal point: a quotient whose integer part has
//! more than 50 digits keeps all of them, rounded at the units digit. So dividing integers that
//! divide exactly always gives the exact integer.
//!
//! # Limits, checked before any work is done
//!
//! A number (operand or result) may have at most [`MAX_DIGITS`] (10,000) digits when written
//! out in full without an exponent: the digits before the point (none for `0.…`) plus the
//! digits after it. `1e9999` fits (10,000 digits), `1e10000` does not, and neither does
//! `1e-10001` (10,000 zeros and a one after the point; `1e-10000` fits). The check runs on the written digits
//! and the exponent alone, so `1e999999999` is refused in microseconds instead of being
//! expanded into a billion digits. Results get the same check; where the size of a result can
//! be estimated beforehand (powers, quotients), a hopeless one is refused before it is
//! computed, so no input can make the server burn more than milliseconds of CPU.
//!
//! `^` takes an integer exponent with `|exponent| ≤` [`MAX_EXPONENT`], and the exact power
//! `|mantissa|^|exponent|` it computes on the way must itself fit in [`MAX_DIGITS`]
//! significant digits (so `0.5 ^ -20000`, whose result would fit, is still refused: the
//! intermediate `5^20000` does not). `0 ^ 0` is `1`; `0` to a negative power is a division by
//! zero.
//!
//! `%` is the remainder of truncating division, with the sign of the dividend, exactly:
//! `-7 2 %` is `-1` and `7 -2 %` is `1`, like C's `fmod`, Rust's `%` and Python's
//! `decimal.Decimal` (not Python's `%` on ints, which takes the divisor's sign).
//!
//! Results are printed without an exponent and without needless zeros: `1e3` prints as
//! `1000`, `2.50` as `2.5`, `-0` as `0`.

use std::cmp::Ordering;

use bigdecimal::BigDecimal;
use num_bigint::{BigInt, BigUint, Sign};

/// Most digits a number may have written out in full (integer digits plus fraction digits).
pub const MAX_DIGITS: u64 = 10_000;
/// Significant digits kept by division, square root and negative powers.
pub const PRECISION: u64 = 50;
/// Largest `|exponent|` accepted by `^`.
pub const MAX_EXPONENT: u64 = 100_000;

/// An exponent (the `e…` part of an operand) this large means "too many digits" whatever the
/// mantissa, so reading one stops growing here instead of overflowing.
const EXPONENT_CAP: i64 = 1_000_000_000_000_000;

/// Why a token is not an acceptable number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NumberError {
    /// The token is not decimal number syntax.
    #[error("not a number")]
    NotANumber,
    /// The number is well formed but has more than [`MAX_DIGITS`] digits written out.
    #[error("too many digits")]
    TooManyDigits,
}

/// Why an operation has no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalcError {
    /// `/` or `%` by zero, or zero to a negative power.
    #[error("division by zero")]
    DivisionByZero,
    /// The result would have more than [`MAX_DIGITS`] digits written out (also when an operand
    /// given through the library API is already that large).
    #[error("result too large")]
    ResultTooLarge,
    /// `^` with an exponent that has a fraction.
    #[error("exponent must be an integer")]
    ExponentNotInteger,
    /// `^` with `|exponent| >` [`MAX_EXPONENT`].
    #[error("exponent too large")]
    ExponentTooLarge,
    /// `sqrt` of a negative number.
    #[error("square root of a negative number")]
    NegativeSquareRoot,
}

/// Parses one operand: `[+|-] digits [. digits] [(e|E) [+|-] digits]`, where either side of
/// the point may be empty but not both (`3`, `-2.5`, `.5`, `5.`, `1e3`, `+1.5E-7`). Anything
/// else (spaces, `_`, `0x10`, `inf`, `nan`) is [`NumberError::NotANumber`].
///
/// ```
/// use socklab::calc::number::{format, parse, NumberError};
/// assert_eq!(format(&parse(b"1e3").unwrap()), "1000");
/// assert_eq!(format(&parse(b"-2.50").unwrap()), "-2.5");
/// assert_eq!(parse(b"1e999999999"), Err(NumberError::TooManyDigits));
/// assert_eq!(parse(b"1.2.3"), Err(NumberError::NotANumber));
/// ```
pub fn parse(token: &[u8]) -> Result<BigDecimal, NumberError> {
    Dec::parse(token).map(|d| d.to_big())
}

/// Whether `x` is within [`MAX_DIGITS`] written out in full.
pub fn fits(x: &BigDecimal) -> bool {
    Dec::from_big(x).fits()
}

/// Writes `x` out in full: no exponent, no trailing zeros after the point, no point when there
/// is no fraction, `0` for zero. The text is as long as the number written out, so check
/// [`fits`] first for a number that did not come from this module.
pub fn format(x: &BigDecimal) -> String {
    Dec::from_big(x).to_plain()
}

/// `a + b`, exact.
pub fn add(a: &BigDecimal, b: &BigDecimal) -> Result<BigDecimal, CalcError> {
    let (a, b) = (Dec::checked(a)?, Dec::checked(b)?);
    a.add(&b).checked_big()
}

/// `a - b`, exact.
pub fn sub(a: &BigDecimal, b: &BigDecimal) -> Result<BigDecimal, CalcError> {
    let (a, b) = (Dec::checked(a)?, Dec::checked(b)?);
    a.add(&b.neg()).checked_big()
}

/// `a × b`, exact.
pub fn mul(a: &BigDecimal, b: &BigDecimal) -> Result<BigDecimal, CalcError> {
    let (a, b) = (Dec::checked(a)?, Dec::checked(b)?);
    a.mul(&b).checked_big()
}

/// `a / b`, rounded half to even to [`PRECISION`] significant digits (but never past the
/// units digit).
pub fn div(a: &BigDecimal, b: &BigDecimal) -> Result<BigDecimal, CalcError> {
    let (a, b) = (Dec::checked(a)?, Dec::checked(b)?);
    a.div(&b)?.checked_big()
}

/// `a % b`: the exact remainder of truncating division, with the sign of `a`.
pub fn rem(a: &BigDecimal, b: &BigDecimal) -> Result<BigDecimal, CalcError> {
    let (a, b) = (Dec::checked(a)?, Dec::checked(b)?);
    a.rem(&b)?.checked_big()
}

/// `a ^ b` for an integer `b` with `|b| ≤` [`MAX_EXPONENT`]: exact for `b ≥ 0`, `1 / a^|b|`
/// rounded like [`div`] for `b < 0`.
pub fn pow(a: &BigDecimal, b: &BigDecimal) -> Result<BigDecimal, CalcError> {
    let (a, b) = (Dec::checked(a)?, Dec::checked(b)?);
    a.pow(&b)?.checked_big()
}

/// `-a`.
pub fn neg(a: &BigDecimal) -> Result<BigDecimal, CalcError> {
    Dec::checked(a)?.neg().checked_big()
}

/// `|a|`.
pub fn abs(a: &BigDecimal) -> Result<BigDecimal, CalcError> {
    let mut a = Dec::checked(a)?;
    a.neg = false;
    a.checked_big()
}

/// `√a`, rounded half to even to [`PRECISION`] significant digits.
pub fn sqrt(a: &BigDecimal) -> Result<BigDecimal, CalcError> {
    Dec::checked(a)?.sqrt()?.checked_big()
}

/// A decimal in normal form: `(-1)^neg × mag × 10^-scale`, where `mag` has no trailing decimal
/// zeros (zero is `mag = 0, scale = 0, neg = false`) and `digits` is its number of decimal
/// digits. Every constructor goes through [`Dec::new`], so the form always holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dec {
    neg: bool,
    mag: BigUint,
    scale: i64,
    digits: u64,
}

impl Dec {
    fn zero() -> Self {
        Dec {
            neg: false,
            mag: BigUint::default(),
            scale: 0,
            digits: 1,
        }
    }

    fn one() -> Self {
        Dec::new(false, BigUint::from(1u32), 0)
    }

    /// Normalises: strips trailing zeros into the scale, counts digits, makes zero unsigned.
    fn new(neg: bool, mag: BigUint, scale: i64) -> Self {
        if let Some(small) = to_u64(&mag) {
            if small == 0 {
                return Dec::zero();
            }
            let (mut v, mut zeros) = (small, 0i64);
            while v % 10 == 0 {
                v /= 10;
                zeros += 1;
            }
            return Dec {
                neg,
                mag: BigUint::from(v),
                scale: scale.saturating_sub(zeros),
                digits: u64::from(v.ilog10()) + 1,
            };
        }
        // Larger magnitudes: one conversion to decimal gives both the digit count and the
        // trailing zeros.
        let text = mag.to_str_radix(10);
        let zeros = text.len() - text.trim_end_matches('0').len();
        let digits = (text.len() - zeros) as u64;
        if zeros == 0 {
            return Dec {
                neg,
                mag,
                scale,
                digits,
            };
        }
        Dec {
            neg,
            mag: mag / pow10(zeros as u64),
            scale: scale.saturating_sub(zeros as i64),
            digits,
        }
    }

    fn from_signed(x: BigInt, scale: i64) -> Self {
        let (sign, mag) = x.into_parts();
        Dec::new(sign == Sign::Minus, mag, scale)
    }

    fn from_big(x: &BigDecimal) -> Self {
        let (int, scale) = x.as_bigint_and_scale();
        Dec::new(int.sign() == Sign::Minus, int.magnitude().clone(), scale)
    }

    /// An operand given to the public functions: refused if it is outside the limit, which
    /// bounds the cost of everything that follows.
    fn checked(x: &BigDecimal) -> Result<Self, CalcError> {
        let d = Dec::from_big(x);
        if d.fits() {
            Ok(d)
        } else {
            Err(CalcError::ResultTooLarge)
        }
    }

    fn checked_big(self) -> Result<BigDecimal, CalcError> {
        if self.fits() {
            Ok(self.to_big())
        } else {
            Err(CalcError::ResultTooLarge)
        }
    }

    fn to_big(&self) -> BigDecimal {
        let sign = if self.neg { Sign::Minus } else { Sign::Plus };
        BigDecimal::new(BigInt::from_biguint(sign, self.mag.clone()), self.scale)
    }

    fn is_zero(&self) -> bool {
        self.digits == 1 && to_u64(&self.mag) == Some(0)
    }

    fn signed(&self) -> BigInt {
        let sign = if self.neg { Sign::Minus } else { Sign::Plus };
        BigInt::from_biguint(sign, self.mag.clone())
    }

    /// `p` such that `10^(p-1) ≤ |x| < 10^p`: how many digits the integer part has, when
    /// positive.
    fn magnitude(&self) -> i128 {
        i128::from(self.digits) - i128::from(self.scale)
    }

    /// Digits written out in full: integer digits (none for `0.…`) plus fraction digits.
    fn plain_len(&self) -> i128 {
        if self.is_zero() {
            return 1;
        }
        self.magnitude().max(0) + i128::from(self.scale).max(0)
    }

    fn fits(&self) -> bool {
        self.plain_len() <= i128::from(MAX_DIGITS)
    }

    fn parse(token: &[u8]) -> Result<Self, NumberError> {
        let (neg, rest) = match token.split_first() {
            Some((b'-', rest)) => (true, rest),
            Some((b'+', rest)) => (false, rest),
            _ => (false, token),
        };
        let (int, rest) = rest.split_at(leading_digits(rest));
        let (frac, rest) = match rest.split_first() {
            Some((b'.', after)) => after.split_at(leading_digits(after)),
            _ => (&[][..], rest),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(NumberError::NotANumber);
        }
        let exponent = match rest.split_first() {
            None => 0,
            Some((b'e' | b'E', digits)) => parse_exponent(digits)?,
            Some(_) => return Err(NumberError::NotANumber),
        };
        // The mantissa's digits, without leading zeros; trailing zeros go into the exponent.
        // Nothing is expanded: `1e999999999` is one digit and an exponent at this point.
        let mantissa: Vec<u8> = int.iter().chain(frac).copied().collect();
        let start = mantissa
            .iter()
            .position(|&d| d != b'0')
            .unwrap_or(mantissa.len());
        let end = mantissa
            .iter()
            .rposition(|&d| d != b'0')
            .map_or(start, |i| i + 1);
        if start == end {
            return Ok(Dec::zero());
        }
        let significant = &mantissa[start..end];
        let trailing_zeros = (mantissa.len() - end) as i64;
        let exponent = exponent - frac.len() as i64 + trailing_zeros;
        let digits = significant.len() as u64;
        let magnitude = digits as i128 + i128::from(exponent);
        let plain_len = magnitude.max(0) + (-i128::from(exponent)).max(0);
        if plain_len > i128::from(MAX_DIGITS) {
            return Err(NumberError::TooManyDigits);
        }
        let mag = BigUint::parse_bytes(significant, 10).ok_or(NumberError::NotANumber)?;
        Ok(Dec {
            neg,
            mag,
            scale: -exponent,
            digits,
        })
    }

    fn to_plain(&self) -> String {
        if self.is_zero() {
            return "0".into();
        }
        let digits = self.mag.to_str_radix(10);
        let len = usize::try_from(self.plain_len()).unwrap_or(usize::MAX);
        let mut out = String::with_capacity(len.saturating_add(3).min(1 << 20));
        if self.neg {
            out.push('-');
        }
        if self.scale <= 0 {
            // No fraction: the digits, then -scale zeros.
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', self.scale.unsigned_abs() as usize));
        } else if (self.scale as u64) < digits.len() as u64 {
            let (int, frac) = digits.split_at(digits.len() - self.scale as usize);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', self.scale as usize - digits.len()));
            out.push_str(&digits);
        }
        out
    }

    fn neg(&self) -> Self {
        let mut d = self.clone();
        d.neg = !d.neg && !d.is_zero();
        d
    }

    fn add(&self, other: &Dec) -> Self {
        // Align both on the larger scale. Both operands fit, so each scale is within
        // ±MAX_DIGITS and the aligned integers have at most about 3 × MAX_DIGITS digits.
        let scale = self.scale.max(other.scale);
        let a = shift(self.signed(), scale - self.scale);
        let b = shift(other.signed(), scale - other.scale);
        Dec::from_signed(a + b, scale)
    }

    fn mul(&self, other: &Dec) -> Self {
        Dec::new(
            self.neg != other.neg,
            &self.mag * &other.mag,
            self.scale + other.scale,
        )
    }

    fn div(&self, other: &Dec) -> Result<Self, CalcError> {
        if other.is_zero() {
            return Err(CalcError::DivisionByZero);
        }
        if self.is_zero() {
            return Ok(Dec::zero());
        }
        // |a/b| lies between 10^(p-2) and 10^p, p = magnitude(a) - magnitude(b). A quotient
        // that cannot fit is refused before dividing, which also bounds the shift below.
        let p = self.magnitude() - other.magnitude();
        let limit = i128::from(MAX_DIGITS);
        if p > limit + 1 || p < -limit {
            return Err(CalcError::ResultTooLarge);
        }
        // Shift the dividend left by k digits so that the integer quotient has at least
        // PRECISION + 1 digits and at least one fraction digit; `round` then drops the extra
        // digits, knowing from the remainder whether anything non-zero was left behind.
        let precision = i128::from(PRECISION);
        let k = 0
            .max(precision + 1 + i128::from(other.digits) - i128::from(self.digits))
            .max(i128::from(other.scale) - i128::from(self.scale) + 1);
        let k = u64::try_from(k).map_err(|_| CalcError::ResultTooLarge)?;
        let dividend = &self.mag * pow10(k);
        let quotient = &dividend / &other.mag;
        let inexact = dividend != &quotient * &other.mag;
        let scale = self.scale - other.scale + k as i64;
        Ok(round(self.neg != other.neg, quotient, scale, inexact))
    }

    fn rem(&self, other: &Dec) -> Result<Self, CalcError> {
        if other.is_zero() {
            return Err(CalcError::DivisionByZero);
        }
        let scale = self.scale.max(other.scale);
        let a = shift_mag(&self.mag, scale - self.scale);
        let b = shift_mag(&other.mag, scale - other.scale);
        // Truncating division: the remainder takes the dividend's sign.
        Ok(Dec::new(self.neg, a % b, scale))
    }

    fn pow(&self, exponent: &Dec) -> Result<Self, CalcError> {
        if exponent.scale > 0 {
            return Err(CalcError::ExponentNotInteger);
        }
        // The exponent is an integer with `digits` digits then -scale zeros; anything with
        // more than 6 digits in all is over MAX_EXPONENT.
        if exponent.magnitude() > 6 {
            return Err(CalcError::ExponentTooLarge);
        }
        let n = to_u64(&exponent.mag)
            .and_then(|m| m.checked_mul(10u64.pow(exponent.scale.unsigned_abs() as u32)))
            .filter(|&n| n <= MAX_EXPONENT)
            .ok_or(CalcError::ExponentTooLarge)?;
        if n == 0 {
            return Ok(Dec::one());
        }
        if self.is_zero() {
            return if exponent.neg {
                Err(CalcError::DivisionByZero)
            } else {
                Ok(Dec::zero())
            };
        }
        let odd = n % 2 == 1;
        // digits(mag^n) = floor(n × log10(mag)) + 1: refuse a power that cannot fit before
        // computing it. The small margin absorbs floating-point error; a power that slips
        // through by a hair is caught by the exact check afterwards.
        if n as f64 * log10(&self.mag) >= MAX_DIGITS as f64 + 0.01 {
            return Err(CalcError::ResultTooLarge);
        }
        let n32 = u32::try_from(n).map_err(|_| CalcError::ExponentTooLarge)?;
        let scale = self
            .scale
            .checked_mul(n as i64)
            .ok_or(CalcError::ResultTooLarge)?;
        let power = Dec::new(self.neg && odd, self.mag.pow(n32), scale);
        if power.digits > MAX_DIGITS {
            return Err(CalcError::ResultTooLarge);
        }
        if exponent.neg {
            Dec::one().div(&power)
        } else {
            Ok(power)
        }
    }

    fn sqrt(&self) -> Result<Self, CalcError> {
        if self.neg {
            return Err(CalcError::NegativeSquareRoot);
        }
        if self.is_zero() {
            return Ok(Dec::zero());
        }
        // √(mag × 10^-scale) = √(mag × 10^(2t - scale)) × 10^-t. Choose t so that the integer
        // under the root is whole (2t ≥ scale), its root has at least PRECISION + 1 digits,
        // and there is at least one fraction digit for `round` to look at.
        let precision = i128::from(PRECISION);
        let scale = i128::from(self.scale);
        let t = div_ceil(scale, 2)
            .max(div_ceil(
                2 * precision + 2 + scale - i128::from(self.digits),
                2,
            ))
            .max(1);
        let t = i64::try_from(t).map_err(|_| CalcError::ResultTooLarge)?;
        let radicand = shift_mag(&self.mag, t * 2 - self.scale);
        let root = radicand.sqrt();
        let inexact = &root * &root != radicand;
        Ok(round(false, root, t, inexact))
    }
}

/// Rounds `mag × 10^-scale` to [`PRECISION`] significant digits, half to even, without
/// dropping integer digits. `inexact` says the true value is a little more than `mag` (digits
/// beyond it were cut off), which breaks a tie upwards.
///
/// Callers pass at least `PRECISION + 1` digits and a positive scale whenever `inexact`, so
/// at least one digit is dropped and the cut-off part is never lost silently.
fn round(neg: bool, mag: BigUint, scale: i64, inexact: bool) -> Dec {
    let digits = count_digits(&mag);
    let drop = (i128::from(digits) - i128::from(PRECISION)).min(i128::from(scale));
    let Ok(drop) = u64::try_from(drop) else {
        return Dec::new(neg, mag, scale);
    };
    if drop == 0 {
        return Dec::new(neg, mag, scale);
    }
    let unit = pow10(drop);
    let kept = &mag / &unit;
    let dropped = mag - &kept * &unit;
    let half = unit >> 1u32;
    let up = match dropped.cmp(&half) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => inexact || kept.bit(0),
    };
    let kept = if up { kept + 1u32 } else { kept };
    Dec::new(neg, kept, scale - drop as i64)
}

fn leading_digits(s: &[u8]) -> usize {
    s.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// The exponent after `e`: optional sign, at least one digit. Grows no further than
/// [`EXPONENT_CAP`], which is already far past any number that fits.
fn parse_exponent(s: &[u8]) -> Result<i64, NumberError> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(NumberError::NotANumber);
    }
    let value = digits.iter().fold(0i64, |acc, d| {
        (acc * 10 + i64::from(d - b'0')).min(EXPONENT_CAP)
    });
    Ok(if neg { -value } else { value })
}

fn to_u64(m: &BigUint) -> Option<u64> {
    let mut words = m.iter_u64_digits();
    match (words.next(), words.next()) {
        (None, _) => Some(0),
        (Some(w), None) => Some(w),
        _ => None,
    }
}

fn count_digits(m: &BigUint) -> u64 {
    match to_u64(m) {
        Some(v) => v.checked_ilog10().map_or(1, |d| u64::from(d) + 1),
        None => m.to_str_radix(10).len() as u64,
    }
}

/// `10^k`. Callers bound `k` by a few times [`MAX_DIGITS`].
fn pow10(k: u64) -> BigUint {
    debug_assert!(
        k <= 64 * MAX_DIGITS,
        "10^{k} is far beyond any number that fits"
    );
    BigUint::from(10u32).pow(k as u32)
}

/// `x × 10^k` for `k ≥ 0` (callers never shift right).
fn shift(x: BigInt, k: i64) -> BigInt {
    if k <= 0 {
        x
    } else {
        x * BigInt::from(pow10(k as u64))
    }
}

fn shift_mag(x: &BigUint, k: i64) -> BigUint {
    if k <= 0 {
        x.clone()
    } else {
        x * pow10(k as u64)
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if (a % b != 0) && ((a < 0) == (b < 0)) {
        q + 1
    } else {
        q
    }
}

/// log10 of a non-zero integer, from its top 64 bits (relative error about 1e-16).
fn log10(m: &BigUint) -> f64 {
    let bits = m.bits();
    let shift = bits.saturating_sub(64);
    let top = to_u64(&(m >> shift)).unwrap_or(u64::MAX);
    (top as f64).log10() + shift as f64 * std::f64::consts::LOG10_2
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn n(s: &str) -> BigDecimal {
        parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn show(r: Result<BigDecimal, CalcError>) -> String {
        match r {
            Ok(v) => format(&v),
            Err(e) => format!("FALLO {e}"),
        }
    }

    fn bin(
        f: fn(&BigDecimal, &BigDecimal) -> Result<BigDecimal, CalcError>,
        a: &str,
        b: &str,
    ) -> String {
        show(f(&n(a), &n(b)))
    }

    #[test]
    fn parses_and_formats_without_exponent_or_needless_zeros() {
        for (input, shown) in [
            ("3", "3"),
            ("-2.5", "-2.5"),
            ("2.50", "2.5"),
            ("1e3", "1000"),
            ("1E3", "1000"),
            ("1e+3", "1000"),
            ("1.5e-3", "0.0015"),
            ("+7", "7"),
            (".5", "0.5"),
            ("5.", "5"),
            ("-0", "0"),
            ("-0.000", "0"),
            ("0e999999999999999999999", "0"),
            ("000123.4500", "123.45"),
            ("100", "100"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            ("-.001", "-0.001"),
        ] {
            assert_eq!(format(&n(input)), shown, "{input}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_number() {
        for bad in [
            "", "+", "-", ".", "e3", "1e", "1e+", "1.2.3", "--1", "1-", " 1", "1 ", "1_000",
            "0x10", "inf", "nan", "1e3.5", "١", "1\r",
        ] {
            assert_eq!(
                parse(bad.as_bytes()),
                Err(NumberError::NotANumber),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_digit_limit_is_checked_before_expanding() {
        assert!(fits(&n("1e9999")));
        assert_eq!(format(&n("1e9999")).len(), 10_000);
        assert!(fits(&n("1e-10000")));
        assert_eq!(
            format(&n("1e-10000")).len(),
            10_002,
            "0. then 10,000 digits"
        );
        for huge in [
            "1e10000",
            "1e-10001",
            "1e999999999",
            "-1e-999999999999",
            "1e99999999999999999999",
        ] {
            assert_eq!(
                parse(huge.as_bytes()),
                Err(NumberError::TooManyDigits),
                "{huge}"
            );
        }
        // 9,000 integer digits and 1,001 fraction digits: 10,001 in all.
        let token = format!("{}.{}", "1".repeat(9000), "1".repeat(1001));
        assert_eq!(parse(token.as_bytes()), Err(NumberError::TooManyDigits));
        assert!(
            fits(&n("1.0000000001e8999")),
            "a short mantissa with a big exponent"
        );
    }

    #[test]
    fn addition_is_exact() {
        assert_eq!(bin(add, "0.1", "0.2"), "0.3");
        assert_eq!(bin(sub, "0.3", "0.1"), "0.2");
        assert_eq!(
            bin(add, "1e20", "1e-20"),
            "100000000000000000000.00000000000000000001"
        );
        assert_eq!(bin(sub, "2.5", "2.5"), "0");
        assert_eq!(
            bin(add, "99999999999999999999999999999999", "1"),
            "100000000000000000000000000000000"
        );
        assert_eq!(bin(add, "1e9999", "1e9999").len(), 10_000);
        assert_eq!(bin(add, "9e9999", "1e9999"), "FALLO result too large");
    }

    #[test]
    fn multiplication_is_exact() {
        assert_eq!(bin(mul, "1.5", "2"), "3");
        assert_eq!(bin(mul, "-0.1", "0.1"), "-0.01");
        assert_eq!(bin(mul, "0", "-5"), "0");
        assert_eq!(
            bin(
                mul,
                "123456789012345678901234567890",
                "987654321098765432109876543210"
            ),
            "121932631137021795226185032733622923332237463801111263526900"
        );
        assert_eq!(bin(mul, "1e5000", "1e5000"), "FALLO result too large");
        assert_eq!(bin(mul, "1e-5000", "1e-5000").len(), 10_002);
        assert_eq!(bin(mul, "1e-5000", "1e-5001"), "FALLO result too large");
    }

    #[test]
    fn division_rounds_to_fifty_significant_digits_half_even() {
        assert_eq!(bin(div, "7", "2"), "3.5");
        assert_eq!(bin(div, "1", "4"), "0.25");
        assert_eq!(bin(div, "1", "3"), format!("0.{}", "3".repeat(50)));
        assert_eq!(bin(div, "2", "3"), format!("0.{}7", "6".repeat(49)));
        assert_eq!(bin(div, "-2", "3"), format!("-0.{}7", "6".repeat(49)));
        // An integer part longer than 50 digits is kept whole, rounded at the units digit.
        assert_eq!(
            bin(div, "1", "7e-100"),
            format!("{}1429", "142857".repeat(16))
        );
        assert_eq!(bin(div, "10", "0"), "FALLO division by zero");
        assert_eq!(bin(div, "0", "0"), "FALLO division by zero");
        assert_eq!(bin(div, "0", "3"), "0");
        // Exact integer quotients stay exact, however long.
        let big = format!("2{}2", "0".repeat(99));
        assert_eq!(bin(div, &big, "2"), format!("1{}1", "0".repeat(99)));
        // A tie at the 51st digit goes to the even neighbour: 1.000…0005 (50 zeros) / 1.
        let tie = format!("1.{}5", "0".repeat(49));
        assert_eq!(bin(div, &tie, "1"), "1");
        let tie = format!("1.{}15", "0".repeat(48));
        assert_eq!(bin(div, &tie, "1"), format!("1.{}2", "0".repeat(48)));
        assert_eq!(bin(div, "1e9999", "1e-9999"), "FALLO result too large");
        assert_eq!(bin(div, "1e-9999", "1e9999"), "FALLO result too large");
    }

    #[test]
    fn remainder_has_the_sign_of_the_dividend() {
        assert_eq!(bin(rem, "7", "2"), "1");
        assert_eq!(bin(rem, "-7", "2"), "-1");
        assert_eq!(bin(rem, "7", "-2"), "1");
        assert_eq!(bin(rem, "-7", "-2"), "-1");
        assert_eq!(bin(rem, "5.5", "2"), "1.5");
        assert_eq!(bin(rem, "1", "0.3"), "0.1");
        assert_eq!(bin(rem, "6", "3"), "0");
        assert_eq!(bin(rem, "1", "0"), "FALLO division by zero");
        let expected = BigInt::from(10).pow(9999) % BigInt::from(7);
        assert_eq!(bin(rem, "1e9999", "7"), expected.to_string());
    }

    #[test]
    fn powers_are_exact_and_bounded() {
        assert_eq!(bin(pow, "2", "10"), "1024");
        assert_eq!(bin(pow, "-2", "3"), "-8");
        assert_eq!(bin(pow, "-2", "2"), "4");
        assert_eq!(bin(pow, "1.5", "2"), "2.25");
        assert_eq!(bin(pow, "2", "-1"), "0.5");
        assert_eq!(bin(pow, "3", "-2"), format!("0.{}", "1".repeat(50)));
        assert_eq!(bin(pow, "10", "2.0"), "100");
        assert_eq!(bin(pow, "5", "0"), "1");
        assert_eq!(bin(pow, "0", "0"), "1");
        assert_eq!(bin(pow, "0", "5"), "0");
        assert_eq!(bin(pow, "0", "-1"), "FALLO division by zero");
        assert_eq!(bin(pow, "2", "0.5"), "FALLO exponent must be an integer");
        assert_eq!(bin(pow, "1", "100000"), "1");
        assert_eq!(bin(pow, "-1", "99999"), "-1");
        assert_eq!(bin(pow, "1", "100001"), "FALLO exponent too large");
        assert_eq!(bin(pow, "1", "1e9999"), "FALLO exponent too large");
        assert_eq!(bin(pow, "2", "33219").len(), 10_000);
        assert_eq!(bin(pow, "2", "33220"), "FALLO result too large");
        assert_eq!(bin(pow, "9", "99999"), "FALLO result too large");
        assert_eq!(bin(pow, "10", "9999").len(), 10_000);
        assert_eq!(bin(pow, "10", "10000"), "FALLO result too large");
        assert_eq!(bin(pow, "0.1", "10000").len(), 10_002);
        assert_eq!(bin(pow, "0.1", "10001"), "FALLO result too large");
        assert_eq!(bin(pow, "0.1", "-9999").len(), 10_000);
        assert_eq!(bin(pow, "1e-9999", "-100000"), "FALLO result too large");
        assert_eq!(bin(pow, "0.5", "-20000"), "FALLO result too large");
    }

    #[test]
    fn square_roots() {
        assert_eq!(show(sqrt(&n("4"))), "2");
        assert_eq!(show(sqrt(&n("0.25"))), "0.5");
        assert_eq!(show(sqrt(&n("0"))), "0");
        assert_eq!(
            show(sqrt(&n("2"))),
            "1.4142135623730950488016887242096980785696718753769"
        );
        assert_eq!(
            show(sqrt(&n("0.1"))),
            "0.31622776601683793319988935444327185337195551393252"
        );
        assert_eq!(show(sqrt(&n("1e100"))), format!("1{}", "0".repeat(50)));
        assert_eq!(
            show(sqrt(&n("-1"))),
            "FALLO square root of a negative number"
        );
        // √(10^1000 - 1) = 99…9.99…: all 500 integer digits are kept, so it rounds up.
        let big = n(&"9".repeat(1000));
        assert_eq!(show(sqrt(&big)), format!("1{}", "0".repeat(500)));
    }

    #[test]
    fn neg_and_abs() {
        assert_eq!(show(neg(&n("5"))), "-5");
        assert_eq!(show(neg(&n("-5.5"))), "5.5");
        assert_eq!(show(neg(&n("0"))), "0");
        assert_eq!(show(abs(&n("-0.5"))), "0.5");
        assert_eq!(show(abs(&n("7"))), "7");
    }

    #[test]
    fn operands_outside_the_limit_are_refused_by_the_library_api() {
        let huge = BigDecimal::new(BigInt::from(1), -1_000_000_000_000);
        assert!(!fits(&huge));
        assert_eq!(add(&huge, &n("1")), Err(CalcError::ResultTooLarge));
        assert_eq!(sqrt(&huge), Err(CalcError::ResultTooLarge));
    }

    fn int_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            "-?[1-9][0-9]{0,80}",
        ]
    }

    fn decimal_text() -> impl Strategy<Value = String> {
        "-?[0-9]{1,30}(\\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn integer_arithmetic_agrees_with_num_bigint(a in int_text(), b in int_text()) {
            let (x, y): (BigInt, BigInt) = (a.parse().unwrap(), b.parse().unwrap());
            prop_assert_eq!(bin(add, &a, &b), (&x + &y).to_string());
            prop_assert_eq!(bin(sub, &a, &b), (&x - &y).to_string());
            prop_assert_eq!(bin(mul, &a, &b), (&x * &y).to_string());
            if y != BigInt::from(0) {
                // BigInt's % truncates, like ours.
                prop_assert_eq!(bin(rem, &a, &b), (&x % &y).to_string());
            }
        }

        #[test]
        fn small_integer_arithmetic_agrees_with_i128(a in any::<i32>(), b in any::<i32>(), e in 0u32..20) {
            let (x, y) = (i128::from(a), i128::from(b));
            let (a, b) = (a.to_string(), b.to_string());
            prop_assert_eq!(bin(add, &a, &b), (x + y).to_string());
            prop_assert_eq!(bin(mul, &a, &b), (x * y).to_string());
            if y != 0 && x % y == 0 {
                prop_assert_eq!(bin(div, &a, &b), (x / y).to_string());
            }
            let small = (x % 100).to_string();
            prop_assert_eq!(bin(pow, &small, &e.to_string()), (x % 100).pow(e).to_string());
        }

        #[test]
        fn formatting_round_trips(text in decimal_text()) {
            let Ok(x) = parse(text.as_bytes()) else {
                return Ok(());
            };
            let shown = format(&x);
            prop_assert!(!shown.contains(['e', 'E']), "{}", shown);
            prop_assert!(!shown.contains('.') || !shown.ends_with('0'), "{}", shown);
            prop_assert!(!shown.ends_with('.') && shown != "-0", "{}", shown);
            prop_assert_eq!(parse(shown.as_bytes()), Ok(x.clone()));
            prop_assert_eq!(format(&parse(shown.as_bytes()).unwrap()), shown);
        }

        #[test]
        fn quotient_is_within_half_a_unit_of_the_last_digit(a in int_text(), b in int_text()) {
            let (x, y) = (n(&a), n(&b));
            let Ok(q) = div(&x, &y) else {
                prop_assert!(y == 0);
                return Ok(());
            };
            // |q·y - x| ≤ ½ · 10^-scale(q) · |y|, and q has at most 50 significant digits
            // unless its integer part is longer.
            let (digits, scale) = q.as_bigint_and_scale();
            let err = (&q * &y - &x).abs();
            let half_ulp = BigDecimal::new(BigInt::from(5), scale.max(0) + 1);
            prop_assert!(err <= half_ulp * y.abs(), "{} / {} = {}", a, b, q);
            let len = digits.magnitude().to_str_radix(10).len() as i64;
            prop_assert!(len <= PRECISION as i64 || scale <= 0, "{} has {} digits", q, len);
        }

        #[test]
        fn square_root_is_within_half_a_unit(a in "[1-9][0-9]{0,60}(\\.[0-9]{1,20})?") {
            let x = n(&a);
            let r = sqrt(&x).unwrap();
            let (_, scale) = r.as_bigint_and_scale();
            let half = BigDecimal::new(BigInt::from(5), scale + 1);
            let lo = &r - &half;
            let hi = &r + &half;
            prop_assert!((&lo * &lo) <= x && x <= (&hi * &hi), "sqrt({}) = {}", a, r);
        }
    }
}
