-- The table app.py reads. DATETIME columns hold UTC times.
CREATE TABLE orders (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    customer_id BIGINT UNSIGNED NOT NULL,
    status VARCHAR(20) NOT NULL,
    total DECIMAL(12, 2) NOT NULL,
    placed_at DATETIME NOT NULL,
    KEY customer_orders (customer_id, placed_at)
);
