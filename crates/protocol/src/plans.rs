//! Deployment plans (`shared/plans.md`): ids and the resources each one grants.

/// A CPU/RAM deployment plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Plan id, e.g. `nf-compute-20`.
    pub id: &'static str,
    /// CPU in thousandths of a vCPU (200 = 0.2 vCPU).
    pub cpu_millis: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
}

/// Every CPU plan, from Northflank's "Compute Plans and Quota" page.
pub const PLANS: &[Plan] = &[
    plan("nf-compute-10", 100, 256),
    plan("nf-compute-20", 200, 512),
    plan("nf-compute-50", 500, 1024),
    plan("nf-compute-100-1", 1000, 1024),
    plan("nf-compute-100-2", 1000, 2048),
    plan("nf-compute-100-4", 1000, 4096),
    plan("nf-compute-200", 2000, 4096),
    plan("nf-compute-200-4", 2000, 4096),
    plan("nf-compute-200-8", 2000, 8192),
    plan("nf-compute-200-16", 2000, 16384),
    plan("nf-compute-400", 4000, 8192),
    plan("nf-compute-400-16", 4000, 16384),
    plan("nf-compute-800-8", 8000, 8192),
    plan("nf-compute-800-16", 8000, 16384),
    plan("nf-compute-800-24", 8000, 24576),
    plan("nf-compute-800-32", 8000, 32768),
    plan("nf-compute-800-40", 8000, 40960),
];

const fn plan(id: &'static str, cpu_millis: u32, memory_mib: u32) -> Plan {
    Plan {
        id,
        cpu_millis,
        memory_mib,
    }
}

/// Looks up a CPU plan by id.
pub fn find_plan(id: &str) -> Option<&'static Plan> {
    PLANS.iter().find(|p| p.id == id)
}

/// A GPU plan id, `nf-gpu-<model>-<count>g`, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuPlan {
    /// The GPU type, e.g. `a100-80` (the `gpuType` of `deployment.gpu.configuration`).
    pub gpu_type: String,
    /// Number of GPUs.
    pub count: u32,
}

/// Parses `nf-gpu-a100-80-1g` into `{gpu_type: "a100-80", count: 1}`.
pub fn parse_gpu_plan(id: &str) -> Option<GpuPlan> {
    let rest = id.strip_prefix("nf-gpu-")?;
    let (model, count) = rest.rsplit_once('-')?;
    let count: u32 = count.strip_suffix('g')?.parse().ok()?;
    let valid_model = !model.is_empty()
        && model
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (valid_model && count > 0).then(|| GpuPlan {
        gpu_type: model.to_string(),
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_guide_plan() {
        let p = find_plan("nf-compute-200").unwrap();
        assert_eq!((p.cpu_millis, p.memory_mib), (2000, 4096));
        assert!(find_plan("nf-compute-3").is_none());
    }

    #[test]
    fn plan_ids_are_unique() {
        for (i, p) in PLANS.iter().enumerate() {
            assert!(PLANS[i + 1..].iter().all(|q| q.id != p.id), "{}", p.id);
        }
    }

    #[test]
    fn parses_gpu_plans() {
        assert_eq!(
            parse_gpu_plan("nf-gpu-a100-80-1g"),
            Some(GpuPlan {
                gpu_type: "a100-80".into(),
                count: 1
            })
        );
        assert_eq!(parse_gpu_plan("nf-gpu-h100-80-8g").unwrap().count, 8);
        assert_eq!(parse_gpu_plan("nf-gpu-a100-80-0g"), None);
        assert_eq!(parse_gpu_plan("nf-gpu--1g"), None);
        assert_eq!(parse_gpu_plan("nf-compute-20"), None);
    }
}
