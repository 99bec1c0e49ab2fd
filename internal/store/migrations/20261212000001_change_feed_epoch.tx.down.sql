DROP TABLE change_feed_epoch;
