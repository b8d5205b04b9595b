DROP TABLE dataset_snapshots;
