ALTER TABLE shadow_predictions ADD PRIMARY KEY (task, model_version, item_id);
