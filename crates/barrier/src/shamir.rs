//! Shamir secret sharing of the unseal key over GF(256), via `blahaj` (the maintained
//! fork of `sharks`, without RUSTSEC-2024-0398).
//!
//! A share is `x ‖ y…` (one byte of x-coordinate, then one byte per secret byte).

use blahaj::{Share, Sharks};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ShamirError {
    #[error("secret_threshold must be at least 1 and at most secret_shares")]
    BadThreshold,
    #[error("secret_shares must be between 1 and 255")]
    BadShares,
    #[error(
        "secret_shares and secret_threshold must both be greater than 1 to split a key, or both 1"
    )]
    ThresholdOfOne,
    #[error("a key share is malformed")]
    Malformed,
    #[error("not enough distinct key shares")]
    NotEnough,
}

/// Split `secret` into `shares` shares of which any `threshold` recombine it.
/// With `shares == 1` the single "share" is the key itself, as in OpenBao.
pub fn split(
    secret: &[u8],
    shares: u8,
    threshold: u8,
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    if shares == 0 {
        return Err(ShamirError::BadShares);
    }
    if threshold == 0 || threshold > shares {
        return Err(ShamirError::BadThreshold);
    }
    if shares == 1 {
        return Ok(vec![Zeroizing::new(secret.to_vec())]);
    }
    if threshold == 1 {
        return Err(ShamirError::ThresholdOfOne);
    }
    Ok(Sharks(threshold)
        .dealer(secret)
        .take(shares as usize)
        .map(|s| Zeroizing::new(Vec::from(&s)))
        .collect())
}

/// Recombine shares; duplicates (same x) count once. With `threshold == 1` the one share
/// is the key.
pub fn combine(
    shares: &[Zeroizing<Vec<u8>>],
    threshold: u8,
) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    if threshold <= 1 {
        return shares.first().cloned().ok_or(ShamirError::NotEnough);
    }
    let mut parsed: Vec<Share> = Vec::with_capacity(shares.len());
    for s in shares {
        if s.len() < 2 {
            return Err(ShamirError::Malformed);
        }
        let share = Share::try_from(&s[..]).map_err(|_| ShamirError::Malformed)?;
        if parsed.iter().any(|p| p.x == share.x) {
            continue;
        }
        parsed.push(share);
    }
    if parsed.len() < threshold as usize {
        return Err(ShamirError::NotEnough);
    }
    Sharks(threshold)
        .recover(&parsed)
        .map(Zeroizing::new)
        .map_err(|_| ShamirError::NotEnough)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_threshold_subset_recombines() {
        let secret = [7u8; 32];
        let shares = split(&secret, 5, 3).unwrap();
        assert_eq!(shares.len(), 5);
        for (a, b, c) in [(0, 1, 2), (0, 2, 4), (4, 3, 1)] {
            let got = combine(
                &[shares[a].clone(), shares[b].clone(), shares[c].clone()],
                3,
            )
            .unwrap();
            assert_eq!(&got[..], &secret);
        }
        assert_eq!(combine(&shares[..2], 3), Err(ShamirError::NotEnough));
        // a duplicate does not count twice
        assert_eq!(
            combine(
                &[shares[0].clone(), shares[0].clone(), shares[1].clone()],
                3
            ),
            Err(ShamirError::NotEnough)
        );
    }

    #[test]
    fn one_share_is_the_key() {
        let shares = split(&[1, 2, 3], 1, 1).unwrap();
        assert_eq!(&shares[0][..], &[1, 2, 3]);
        assert_eq!(split(&[1], 3, 1).unwrap_err(), ShamirError::ThresholdOfOne);
        assert_eq!(split(&[1], 2, 3).unwrap_err(), ShamirError::BadThreshold);
    }
}
