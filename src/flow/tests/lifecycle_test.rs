//! Resume, pause and destroy.

use super::*;

fn resume_with(t: &Memory) -> (Result<()>, Vec<Progress>) {
    let mut steps = Vec::new();
    let mut sink = |p: Progress| steps.push(p);
    let mut reporter = Reporter::new(t, &mut sink);
    let result = run(resume(t, &sandbox(), &mut reporter));
    (result, steps)
}

#[test]
fn resume_scales_and_waits_and_reports_each_failure() {
    let t = Memory::new()
        .ok(json!({}))
        .service("COMPLETED", 0)
        .service("COMPLETED", 1);
    let (done, steps) = resume_with(&t);
    done.unwrap();
    assert_eq!(steps.len(), 1, "one waiting step: {steps:?}");
    let t = Memory::new().answer(404, refused("Service box not found"));
    assert_eq!(resume_with(&t).0.unwrap_err().code(), "NOT_FOUND");
    let t = Memory::new().ok(json!({})).service("FAILED", 1);
    assert_eq!(resume_with(&t).0.unwrap_err().code(), "DEPLOYMENT_FAILED");
    let t = Memory::new()
        .ok(json!({}))
        .service("PENDING", 1)
        .time_out_after_sleeps(0);
    assert_eq!(resume_with(&t).0.unwrap_err().code(), "TIMEOUT");
    assert!(
        t.calls().iter().all(|c| !c.starts_with("cleanup")),
        "a resume deletes nothing"
    );
}

#[test]
fn pause_waits_until_the_rollout_settles_and_destroy_can_outlive_the_page() {
    let t = Memory::new()
        .ok(json!({}))
        .service("IN_PROGRESS", 0)
        .service("COMPLETED", 0);
    run(pause(&t, &sandbox())).unwrap();
    assert_eq!(t.seen()[0].body, Some(json!({ "instances": 0 })));
    let t = Memory::new().ok(json!({}));
    run(destroy(&t, &sandbox(), true, true)).unwrap();
    let seen = &t.seen()[0];
    assert_eq!(
        (seen.path.as_str(), seen.keepalive),
        ("/v1/projects/p/services/box?delete_child_objects=true", true)
    );
}
