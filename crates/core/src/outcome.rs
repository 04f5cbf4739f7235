//! What the request path tells its caller beside the answer: how many attempts a
//! request took and whether the token endpoint refused the refresh token. It travels in
//! a task-local slot set up by [`observe`], never in the answer's headers, so nothing a
//! server sends can forge it.

use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static SLOT: Cell<Outcome>;
}

/// How one request went, as seen by [`crate::execute`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Attempts sent (0 when no request reached the request path).
    pub attempts: u32,
    /// The token endpoint refused to refresh the account's token.
    pub token_refused: bool,
}

/// Runs `request` and returns its output with the [`Outcome`] of the last request it
/// sent through [`crate::execute`].
pub async fn observe<F: Future>(request: F) -> (F::Output, Outcome) {
    SLOT.scope(Cell::new(Outcome::default()), async move {
        let output = request.await;
        let outcome = SLOT.try_with(Cell::get).unwrap_or_default();
        (output, outcome)
    })
    .await
}

/// Gives an [`observe`]d request's output to an enclosing [`observe`] as if the
/// request had run there (for a caller that looked at the result before handing it on).
pub async fn replayed<T>((output, outcome): (T, Outcome)) -> T {
    record(outcome);
    output
}

/// Records `outcome` for the [`observe`] call this request runs under, if any.
pub(crate) fn record(outcome: Outcome) {
    let _ = SLOT.try_with(|slot| slot.set(outcome));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_observed_request_sees_only_its_own_outcome() {
        let inner = async {
            record(Outcome {
                attempts: 3,
                token_refused: false,
            });
        };
        let other = async {
            record(Outcome {
                attempts: 1,
                token_refused: true,
            });
        };
        let ((((), a), ((), b)), outer) = observe(async {
            let both = async { tokio::join!(observe(inner), observe(other)) }.await;
            record(Outcome {
                attempts: 9,
                token_refused: false,
            });
            both
        })
        .await;
        assert_eq!(a.attempts, 3);
        assert!(b.token_refused && b.attempts == 1);
        assert_eq!(outer.attempts, 9);
        record(Outcome::default());
    }
}
