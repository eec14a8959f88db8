//! SIGTERM/SIGINT: the first one cancels a token (the work in progress finishes or rolls
//! forward its step and stops at a safe point); a second one exits at once with 130.

use tokio_util::sync::CancellationToken;

/// Cancel `token` on the first SIGTERM or SIGINT; exit 130 on the second.
pub async fn on_signals(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install the signal handlers");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!("{name}: stopping at a safe point (a second signal exits at once)");
    token.cancel();
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::warn!("second signal: exiting now");
    std::process::exit(130);
}
