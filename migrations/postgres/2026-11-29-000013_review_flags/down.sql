DROP TABLE review_flags;
