//! The tables, written by hand with portable types only so that one schema
//! serves SQLite and PostgreSQL.

diesel::table! {
    tasks (name) {
        name -> Text,
        automation -> Text,
        config -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    model_versions (task, version) {
        task -> Text,
        version -> Text,
        card -> Text,
        data_sha256 -> Text,
        registered_at -> Timestamp,
        weights -> Nullable<Binary>,
        content_sha256 -> Nullable<Text>,
        imported_by -> Nullable<Text>,
    }
}

diesel::table! {
    deployments (task) {
        task -> Text,
        live_version -> Nullable<Text>,
        candidate_version -> Nullable<Text>,
        candidate_mode -> Nullable<Text>,
        canary_percent -> Nullable<Integer>,
        previous_version -> Nullable<Text>,
        updated_at -> Timestamp,
        updated_by -> Text,
        candidate_since -> Nullable<Timestamp>,
    }
}

diesel::table! {
    shadow_predictions (task, created_at, model_version, item_id) {
        task -> Text,
        item_id -> Text,
        model_version -> Text,
        label -> Nullable<Text>,
        confidence -> Nullable<Double>,
        error -> Nullable<Text>,
        forward_us -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    items (task, id) {
        task -> Text,
        id -> Text,
        input -> Text,
        input_sha256 -> Text,
        status -> Text,
        reason -> Nullable<Text>,
        review_state -> Text,
        blind -> Bool,
        audit -> Bool,
        model_version -> Nullable<Text>,
        margin -> Nullable<Double>,
        sla_deadline -> Nullable<Timestamp>,
        created_at -> Timestamp,
        decided_at -> Nullable<Timestamp>,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        out_of_range -> Nullable<Text>,
        claimed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    predictions (task, item_id, model_version) {
        task -> Text,
        item_id -> Text,
        model_version -> Text,
        label -> Nullable<Text>,
        confidence -> Nullable<Double>,
        probabilities -> Nullable<Text>,
        error -> Nullable<Text>,
        featurise_us -> BigInt,
        forward_us -> BigInt,
        policy_us -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    verdicts (task, item_id) {
        task -> Text,
        item_id -> Text,
        label -> Text,
        source -> Text,
        confidence -> Nullable<Double>,
        model_version -> Nullable<Text>,
        decided_by -> Nullable<Text>,
        created_at -> Timestamp,
        basis -> Nullable<Text>,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        name -> Text,
        secret_sha256 -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        rate_limit -> Nullable<BigInt>,
        rate_window_secs -> Nullable<BigInt>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        task -> Nullable<Text>,
        subject -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::table! {
    reviews (task, item_id, reviewer) {
        task -> Text,
        item_id -> Text,
        reviewer -> Text,
        label -> Text,
        comment -> Nullable<Text>,
        seconds_spent -> Double,
        blind -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    review_skips (task, item_id, reviewer) {
        task -> Text,
        item_id -> Text,
        reviewer -> Text,
        skipped_at -> Timestamp,
    }
}

diesel::table! {
    review_flags (task, item_id, reviewer) {
        task -> Text,
        item_id -> Text,
        reviewer -> Text,
        note -> Text,
        flagged_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    review_flags,
    review_skips,
    reviews,
    tasks,
    model_versions,
    deployments,
    shadow_predictions,
    items,
    predictions,
    verdicts,
    api_tokens,
    audit_log,
);

diesel::table! {
    users (name) {
        name -> Text,
        password_hash -> Text,
        role -> Text,
        disabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    user_tasks (user_name, task) {
        user_name -> Text,
        task -> Text,
    }
}

diesel::table! {
    sessions (id_sha256) {
        id_sha256 -> Text,
        user_name -> Text,
        csrf_token -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    sign_in_attempts (key) {
        key -> Text,
        window_start -> Timestamp,
        attempts -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(users, user_tasks, sessions);

diesel::table! {
    dataset_snapshots (task, name) {
        task -> Text,
        name -> Text,
        format -> Text,
        path -> Text,
        row_count -> BigInt,
        byte_count -> BigInt,
        filters -> Text,
        sha256 -> Text,
        created_at -> Timestamp,
        created_by -> Text,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        kind -> Text,
        destination -> Text,
        task -> Nullable<Text>,
        subject -> Text,
        body -> Text,
        html -> Nullable<Text>,
        dedupe_key -> Nullable<Text>,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        delivery -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    outbox_attempts (id) {
        id -> BigInt,
        message_id -> BigInt,
        at -> Timestamp,
        ok -> Bool,
        error -> Nullable<Text>,
        millis -> BigInt,
    }
}

diesel::table! {
    alerts (id) {
        id -> BigInt,
        kind -> Text,
        task -> Text,
        subject -> Text,
        severity -> Text,
        summary -> Text,
        numbers -> Text,
        fired_at -> Timestamp,
        updated_at -> Timestamp,
        resolved_at -> Nullable<Timestamp>,
        acknowledged_by -> Nullable<Text>,
        acknowledged_at -> Nullable<Timestamp>,
        /// When its firing was announced; NULL while a silence holds it.
        notified_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// While a silence holds, the alerts it covers are not emailed.
    alert_silences (id) {
        id -> BigInt,
        kind -> Text,
        task -> Text,
        /// NULL: every alert of the kind in the task.
        subject -> Nullable<Text>,
        reason -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        ends_at -> Timestamp,
        ended_by -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(outbox, outbox_attempts, alerts, alert_silences);

diesel::table! {
    /// Minute buckets of the metrics store; the buckets are columns b00..b19.
    metric_minutes (task, minute, series, name, model_version) {
        task -> Text,
        minute -> BigInt,
        series -> Text,
        name -> Text,
        model_version -> Text,
        count -> BigInt,
        total -> Double,
        b00 -> BigInt,
        b01 -> BigInt,
        b02 -> BigInt,
        b03 -> BigInt,
        b04 -> BigInt,
        b05 -> BigInt,
        b06 -> BigInt,
        b07 -> BigInt,
        b08 -> BigInt,
        b09 -> BigInt,
        b10 -> BigInt,
        b11 -> BigInt,
        b12 -> BigInt,
        b13 -> BigInt,
        b14 -> BigInt,
        b15 -> BigInt,
        b16 -> BigInt,
        b17 -> BigInt,
        b18 -> BigInt,
        b19 -> BigInt,
    }
}

diesel::table! {
    monitor_state (task) {
        task -> Text,
        updated_at -> Timestamp,
        state -> Text,
    }
}

diesel::table! {
    monitor_evaluations (task, evaluated_at, items_seen) {
        task -> Text,
        evaluated_at -> Timestamp,
        items_seen -> BigInt,
        model_version -> Text,
        summary -> Text,
    }
}

diesel::table! {
    score_jobs (id) {
        id -> Text,
        task -> Text,
        format -> Text,
        state -> Text,
        input -> Binary,
        input_bytes -> BigInt,
        chunk_rows -> BigInt,
        chunks_done -> BigInt,
        rows_read -> BigInt,
        scored -> BigInt,
        created -> BigInt,
        automated -> BigInt,
        queued -> BigInt,
        refused -> BigInt,
        error_line -> Nullable<BigInt>,
        error_code -> Nullable<Text>,
        error_field -> Nullable<Text>,
        error_message -> Nullable<Text>,
        created_by -> Text,
        attempts -> Integer,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    score_job_results (job_id, chunk) {
        job_id -> Text,
        chunk -> BigInt,
        body -> Binary,
    }
}

diesel::joinable!(score_job_results -> score_jobs (job_id));
diesel::allow_tables_to_appear_in_same_query!(score_jobs, score_job_results);

diesel::table! {
    /// Requests per key in fixed windows, summed over every instance.
    rate_counts (key, window_start) {
        key -> Text,
        window_start -> BigInt,
        count -> BigInt,
    }
}
