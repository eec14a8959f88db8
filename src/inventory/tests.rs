//! Tests of `inventory::mod`.

use super::*;

#[test]
fn status_boundaries() {
    let rb = RenewBefore::days(90);
    let nb = 1_000;
    let na = nb + 365 * DAY;
    assert_eq!(status_at(nb, na, nb - 1, rb), Status::NotYetValid);
    assert_eq!(status_at(nb, na, nb, rb), Status::Ok);
    assert_eq!(status_at(nb, na, na - 90 * DAY - 1, rb), Status::Ok);
    assert_eq!(status_at(nb, na, na - 90 * DAY, rb), Status::Warning);
    assert_eq!(status_at(nb, na, na - 1, rb), Status::Warning);
    assert_eq!(status_at(nb, na, na, rb), Status::Expired);
    assert_eq!(status_at(nb, na, na, RenewBefore::days(0)), Status::Expired);
    assert_eq!(status_at(nb, na, na - 1, RenewBefore::days(0)), Status::Ok);
}
