//! `container image pull|push|list|inspect|tag|delete|prune|save|load`.

use container_api::StateRoot;
use container_api::apiserver::{ImageInfo, PullRequest, PushRequest};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};

use crate::cli::{Format, ImageCommand, ImageDeleteArgs, ImageListArgs};
use crate::daemon::connect;
use crate::output::{human_size, print_table, split_reference, table};
use crate::progress;

/// Runs one `image` subcommand.
pub async fn run(root: &StateRoot, cmd: ImageCommand) -> Result<i32> {
    let client = connect(root).await?;
    match cmd {
        ImageCommand::Pull(a) => {
            let stream = client
                .pull(PullRequest {
                    reference: a.reference,
                    platform: a.platform.resolve(),
                    scheme: a.transfer.scheme.as_str().into(),
                    max_concurrent_downloads: a.max_concurrent_downloads,
                })
                .await?;
            let info = progress::drive(stream, a.transfer.progress, "downloading").await?;
            println!("{}", info.reference);
        }
        ImageCommand::Push(a) => {
            let stream = client
                .push(PushRequest {
                    reference: a.reference,
                    platform: a.platform.resolve(),
                    scheme: a.transfer.scheme.as_str().into(),
                })
                .await?;
            let info = progress::drive(stream, a.transfer.progress, "uploading").await?;
            println!("{}", info.reference);
        }
        ImageCommand::List(a) => return list(root, a).await,
        ImageCommand::Inspect(a) => {
            let mut values = Vec::new();
            for r in &a.references {
                let text = client.inspect_image(r).await?;
                let v: serde_json::Value = serde_json::from_str(&text)
                    .context(Code::InternalError, "the apiserver sent invalid JSON")?;
                values.push(v);
            }
            println!("{}", pretty(&serde_json::Value::Array(values)));
        }
        ImageCommand::Tag(a) => {
            let info = client.tag(&a.source, &a.target).await?;
            println!("{}", info.reference);
        }
        ImageCommand::Delete(a) => return delete(&client, a).await,
        ImageCommand::Prune(a) => {
            let r = client.prune_images(a.all).await?;
            for d in &r.deleted {
                println!("{d}");
            }
            println!("Reclaimed {} in disk space", human_size(r.reclaimed));
        }
        ImageCommand::Save(a) => {
            let out = std::path::absolute(&a.output).context(
                Code::InvalidArgument,
                format!("invalid path {}", a.output.display()),
            )?;
            client
                .save(a.references, &a.platform.resolve(), &out)
                .await?;
        }
        ImageCommand::Load(a) => {
            let input = std::path::absolute(&a.input).context(
                Code::InvalidArgument,
                format!("invalid path {}", a.input.display()),
            )?;
            if !input.is_file() {
                return Err(ContainerizationError::not_found(format!(
                    "archive {} not found",
                    input.display()
                )));
            }
            for img in client.load(&input).await? {
                println!("Loaded image: {}", img.reference);
            }
        }
    }
    Ok(0)
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn to_json(i: &ImageInfo) -> serde_json::Value {
    serde_json::json!({
        "reference": i.reference,
        "digest": i.digest,
        "mediaType": i.media_type,
        "size": i.size,
        "created": i.created,
        "platforms": i.platforms,
    })
}

/// `image list` / `images`.
pub async fn list(root: &StateRoot, a: ImageListArgs) -> Result<i32> {
    let client = connect(root).await?;
    let mut images = client.list_images().await?;
    images.sort_by(|x, y| x.reference.cmp(&y.reference));
    if a.quiet {
        for i in &images {
            println!("{}", i.reference);
        }
        return Ok(0);
    }
    match a.format {
        Format::Json => println!(
            "{}",
            pretty(&serde_json::Value::Array(
                images.iter().map(to_json).collect()
            ))
        ),
        Format::Table => {
            let mut header = vec!["NAME", "TAG", "DIGEST", "SIZE"];
            if a.verbose {
                header.extend(["PLATFORMS", "CREATED"]);
            }
            let mut t = table(&header);
            for i in &images {
                let (name, tag) = split_reference(&i.reference);
                let hex = i.digest.strip_prefix("sha256:").unwrap_or(&i.digest);
                let digest = if a.verbose {
                    hex
                } else {
                    &hex[..hex.len().min(12)]
                };
                let mut row = vec![name, tag, digest.to_string(), human_size(i.size)];
                if a.verbose {
                    row.extend([i.platforms.join(","), i.created.clone()]);
                }
                t.add_row(row);
            }
            print_table(&t);
        }
    }
    Ok(0)
}

async fn delete(client: &container_api::ApiClient, a: ImageDeleteArgs) -> Result<i32> {
    let refs = if a.all {
        if !a.references.is_empty() {
            return Err(ContainerizationError::invalid_argument(
                "give image references or --all, not both",
            ));
        }
        client
            .list_images()
            .await?
            .into_iter()
            .map(|i| i.reference)
            .collect()
    } else if a.references.is_empty() {
        return Err(ContainerizationError::invalid_argument(
            "name the images to delete, or use --all",
        ));
    } else {
        a.references
    };
    let mut first_error: Option<ContainerizationError> = None;
    for r in refs {
        match client.delete_image(&r).await {
            Ok(d) => println!("{}", d.reference),
            Err(e) if a.force && e.is_code(Code::NotFound) => {}
            Err(e) => {
                // Keep going so one bad name does not stop the others.
                eprintln!("Error: {e}");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Ok(e.code.exit_code()),
        None => Ok(0),
    }
}
