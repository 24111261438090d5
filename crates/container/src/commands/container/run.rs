//! `run`, `create`, `start` and `exec`: the flows that may attach this
//! terminal to a process in the container.

use container_api::apiserver::{ContainerId, CreateRequest};
use container_api::client::from_status;
use container_api::{ApiClient, ProcessConfig, RuntimeClient, StateRoot};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};

use super::args::{resolve_env, resolve_user};
use super::{ExecArgs, RunArgs, StartArgs, attach, decode, get};

/// `run` (start = true) and `create`.
pub async fn run(root: &StateRoot, client: &ApiClient, a: RunArgs, start: bool) -> Result<i32> {
    let opts = a.to_options()?;
    if let Some(cid) = &a.cidfile
        && cid.exists()
    {
        return Err(ContainerizationError::exists(format!(
            "cidfile {} already exists",
            cid.display()
        )));
    }
    let json = serde_json::to_string(&opts).context(Code::InternalError, "encoding the request")?;
    let r = client
        .containers_client()
        .create(CreateRequest { config_json: json })
        .await
        .map_err(from_status)?;
    let snap = decode(&r.into_inner().snapshot_json)?;
    let id = snap.configuration.id.clone();
    if let Some(cid) = &a.cidfile {
        std::fs::write(cid, &id)
            .context(Code::InternalError, format!("writing {}", cid.display()))?;
    }
    if !start {
        println!("{id}");
        return Ok(0);
    }
    bootstrap(client, &id).await?;
    let attach_it = !a.detach;
    let code = start_init(
        root,
        client,
        &id,
        attach_it,
        a.process.interactive,
        a.process.tty,
    )
    .await?;
    if a.detach {
        println!("{id}");
    } else if a.rm {
        wait_removed(client, &id).await;
    }
    Ok(code)
}

/// `--rm`: the helper removes the container after the VM is off; return
/// only once it is gone, so the next command does not see it.
async fn wait_removed(client: &ApiClient, id: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        match get(client, id).await {
            Err(e) if e.is_code(Code::NotFound) => return,
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
}

/// Asks the apiserver to launch the helper (boots the VM).
async fn bootstrap(client: &ApiClient, id: &str) -> Result<()> {
    client
        .containers_client()
        .start(ContainerId { id: id.into() })
        .await
        .map_err(from_status)?;
    Ok(())
}

/// Starts the init process, attached or not; attached, waits for the exit code.
async fn start_init(
    root: &StateRoot,
    client: &ApiClient,
    id: &str,
    attach_it: bool,
    stdin: bool,
    tty: bool,
) -> Result<i32> {
    let rt = RuntimeClient::connect(&root.container_dir(id).join("runtime.sock")).await?;
    if !attach_it {
        rt.start_process(id).await?;
        return Ok(0);
    }
    // Raw before the helper gets stdin: it reads at once, and a line-mode
    // read could take an end-of-file mark as the end of the input.
    let _raw = if tty { attach::raw_mode() } else { None };
    attach::send(root, id, id, stdin)?;
    if tty {
        attach::forward_resize(rt.clone(), id.to_string()).await;
    } else {
        attach::forward_signals(rt.clone(), id.to_string());
    }
    rt.start_process(id).await?;
    match rt.wait(id).await {
        Ok(code) => Ok(code),
        // The helper went away (e.g. --rm cleanup raced us): ask the apiserver.
        Err(_) => Ok(get(client, id)
            .await
            .ok()
            .and_then(|s| s.exit_code)
            .unwrap_or(255)),
    }
}

/// `start [-a] [-i] ID`.
pub async fn start(root: &StateRoot, client: &ApiClient, a: StartArgs) -> Result<i32> {
    let snap = get(client, &a.id).await?;
    let id = snap.configuration.id.clone();
    bootstrap(client, &id).await?;
    let code = start_init(
        root,
        client,
        &id,
        a.attach,
        a.interactive && snap.configuration.process.interactive,
        snap.configuration.process.terminal,
    )
    .await?;
    if !a.attach {
        println!("{id}");
    }
    Ok(code)
}

/// `exec [-d] [-i] [-t] [-e] [-w] [-u] ID CMD...`.
pub async fn exec(root: &StateRoot, client: &ApiClient, a: ExecArgs) -> Result<i32> {
    let snap = get(client, &a.id).await?;
    let id = snap.configuration.id;
    if snap.status != container_api::ContainerStatus::Running {
        return Err(ContainerizationError::invalid_state(format!(
            "container {id} is not running"
        )));
    }
    let rt = RuntimeClient::connect(&root.container_dir(&id).join("runtime.sock")).await?;
    let pid = format!("exec-{:08x}", rand32());
    let process = ProcessConfig {
        args: a.args,
        env: resolve_env(&a.process)?,
        cwd: a.process.workdir.clone().unwrap_or_default(),
        user: resolve_user(&a.process).unwrap_or_default(),
        terminal: a.process.tty,
        interactive: a.process.interactive,
    };
    // Raw before the helper gets stdin (see start_init).
    let _raw = if a.process.tty && !a.detach {
        attach::raw_mode()
    } else {
        None
    };
    if !a.detach {
        attach::send(root, &id, &pid, a.process.interactive)?;
    }
    let json =
        serde_json::to_string(&process).context(Code::InternalError, "encoding the process")?;
    rt.create_process(&pid, json).await?;
    if a.process.tty && !a.detach {
        attach::forward_resize(rt.clone(), pid.clone()).await;
    } else if !a.detach {
        attach::forward_signals(rt.clone(), pid.clone());
    }
    rt.start_process(&pid).await?;
    if a.detach {
        return Ok(0);
    }
    rt.wait(&pid).await
}

fn rand32() -> u32 {
    let mut b = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    u32::from_le_bytes(b)
}
