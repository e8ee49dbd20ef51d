//! Log pages of the newest run's main container (see [`crate::logs`] for the paging rules).

use k8s_openapi::api::core::v1::Pod;
use kube::{ResourceExt as _, api::LogParams};
use omjob_api::labels::LABEL_POD_TYPE;

use super::PipelineClient;
use crate::{
    diagnostics::{self},
    error::{Error, Op, Result},
    logs::{self, CHUNK_BYTES, Page, PageRequest},
    names::PipelineNames,
};

impl PipelineClient {
    /// A page of the newest run's main container log, and the task key to answer it under.
    ///
    /// # Errors
    /// API errors other than those the reference answers with a message.
    pub async fn logs(&self, pipeline: &str, after: Option<&str>) -> Result<(String, Page)> {
        let task_key = match self.get(pipeline).await {
            Ok(d) => d.pipeline_type.task_key().to_owned(),
            Err(Error::NotFound { .. }) => "ingestion_task".to_owned(),
            Err(e) => return Err(e),
        };
        let request = PageRequest::parse(after);
        if let Some(p) = logs::invalid_request(&request) {
            return Ok((task_key, p));
        }
        let PageRequest::Index(index) = request else {
            return Ok((task_key, Page::Invalid("Invalid pagination index".into())));
        };
        let pods = self
            .cluster
            .pods(&PipelineNames::new(pipeline).selector())
            .await?;
        let mains: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.labels().get(LABEL_POD_TYPE).map(String::as_str) == Some("main"))
            .collect();
        let candidates: Vec<&Pod> = if mains.is_empty() {
            pods.iter().collect()
        } else {
            mains
        };
        let Some(pod) = candidates
            .into_iter()
            .max_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0))
        else {
            return Ok((task_key, Page::Message("No pods found for this pipeline".into())));
        };
        let name = pod.name_any();
        let container = diagnostics::main_container(pod);
        let finished = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| Some(&c.name) == container.as_ref()))
            .and_then(|c| c.state.as_ref())
            .is_some_and(|s| s.terminated.is_some());
        let lp = LogParams {
            container: container.clone(),
            ..LogParams::default()
        };
        let pods_api = self.cluster.api::<Pod>();
        let log_err = |e| Error::kube(Op::ReadLog, "Pod", &name, self.ns(), e);
        let page = if finished {
            let key = format!(
                "{}/{}",
                pod.uid().unwrap_or(name.clone()),
                container.unwrap_or_default()
            );
            // One spooling at a time, so concurrent first requests read the log once.
            let spooling = self.spool.writer().await;
            if !self.spool.contains(&key).await {
                let stream = pods_api.log_stream(&name, &lp).await.map_err(log_err)?;
                self.spool
                    .store(&key, Box::pin(stream))
                    .await
                    .map_err(|e| log_err(kube::Error::ReadEvents(e)))?;
            }
            drop(spooling);
            self.spool
                .page(&key, index)
                .await
                .map_err(Error::Spool)?
                .unwrap_or_else(|| Page::Message(format!("No logs available for pod: {name}")))
        } else {
            let stream = pods_api.log_stream(&name, &lp).await.map_err(log_err)?;
            logs::page_from_stream(Box::pin(stream), index, CHUNK_BYTES)
                .await
                .map_err(|e| log_err(kube::Error::ReadEvents(e)))?
        };
        // An empty log is answered as the reference does, not as one empty page.
        let page = match page {
            Page::Chunk { text, total: 1, .. } if text.is_empty() => {
                Page::Message(format!("No logs available for pod: {name}"))
            }
            other => other,
        };
        Ok((task_key, page))
    }
}
