//! `stop`, `kill`, `delete` and `prune`.

use container_api::apiserver::{DeleteRequest, KillRequest, StopRequest};
use container_api::client::from_status;
use container_api::{ApiClient, ContainerStatus};
use containerization_error::{ContainerizationError, Result};

use super::args::parse_signal;
use super::{DeleteArgs, KillArgs, StopArgs, list_all};

/// The ids to act on: the given ones, or every (running) container with `--all`.
async fn targets(
    client: &ApiClient,
    ids: Vec<String>,
    all: bool,
    running: bool,
) -> Result<Vec<String>> {
    if all {
        if !ids.is_empty() {
            return Err(ContainerizationError::invalid_argument(
                "give container ids or --all, not both",
            ));
        }
        return Ok(list_all(client, !running)
            .await?
            .into_iter()
            .map(|s| s.configuration.id)
            .collect());
    }
    if ids.is_empty() {
        return Err(ContainerizationError::invalid_argument(
            "name at least one container, or use --all",
        ));
    }
    Ok(ids)
}

/// Runs `f` on each id, reporting failures one line each; the exit code of
/// the first failure.
async fn each<F, Fut>(ids: Vec<String>, mut f: F) -> Result<i32>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut code = 0;
    for id in ids {
        match f(id.clone()).await {
            Ok(()) => println!("{id}"),
            Err(e) => {
                eprintln!("Error: {e}");
                if code == 0 {
                    code = e.code.exit_code();
                }
            }
        }
    }
    Ok(code)
}

/// `stop`.
pub async fn stop(client: &ApiClient, a: StopArgs) -> Result<i32> {
    let signal = a
        .signal
        .as_deref()
        .map(parse_signal)
        .transpose()?
        .unwrap_or(0);
    let ids = targets(client, a.ids, a.all, true).await?;
    each(ids, |id| async move {
        client
            .containers_client()
            .stop(StopRequest {
                id,
                signal,
                timeout_secs: a.time,
            })
            .await
            .map_err(from_status)?;
        Ok(())
    })
    .await
}

/// `kill`.
pub async fn kill(client: &ApiClient, a: KillArgs) -> Result<i32> {
    let signal = parse_signal(&a.signal)?;
    let ids = targets(client, a.ids, a.all, true).await?;
    each(ids, |id| async move {
        client
            .containers_client()
            .kill(KillRequest { id, signal })
            .await
            .map_err(from_status)?;
        Ok(())
    })
    .await
}

/// `delete`.
pub async fn delete(client: &ApiClient, a: DeleteArgs) -> Result<i32> {
    let force = a.force;
    let ids = targets(client, a.ids, a.all, false).await?;
    each(ids, |id| async move {
        client
            .containers_client()
            .delete(DeleteRequest { id, force })
            .await
            .map_err(from_status)?;
        Ok(())
    })
    .await
}

/// `prune`: deletes every stopped container.
pub async fn prune(client: &ApiClient) -> Result<i32> {
    let ids: Vec<String> = list_all(client, true)
        .await?
        .into_iter()
        .filter(|s| {
            matches!(
                s.status,
                ContainerStatus::Stopped | ContainerStatus::Created
            )
        })
        .map(|s| s.configuration.id)
        .collect();
    each(ids, |id| async move {
        client
            .containers_client()
            .delete(DeleteRequest { id, force: false })
            .await
            .map_err(from_status)?;
        Ok(())
    })
    .await
}
