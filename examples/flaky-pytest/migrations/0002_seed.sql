-- Seed rows every test starts from: 3 users (ids 1-3), 5 products, 2 coupons, 4 orders, 3 settings.
insert into users (email, name) values
  ('ada@example.com', 'Ada'),
  ('grace@example.com', 'Grace'),
  ('linus@example.com', 'Linus');

insert into products (sku, name, price_cents, stock) values
  ('starter-kit', 'Starter kit', 1900, 5),
  ('pro-kit', 'Pro kit', 4900, 3),
  ('mug', 'Mug', 1200, 40),
  ('sticker-pack', 'Sticker pack', 300, 200),
  ('t-shirt', 'T-shirt', 2500, 12);

insert into coupons (code, percent_off) values ('SPRING5', 5), ('VIP20', 20);

insert into orders (user_id, product_id, quantity, total_cents, coupon_code) values
  (1, 2, 1, 4900, null),
  (2, 3, 2, 2400, null),
  (3, 4, 3, 900, null),
  (1, 5, 1, 2000, 'VIP20');

insert into settings (key, value) values
  ('currency', 'EUR'),
  ('maintenance', 'off'),
  ('tax_rate_percent', '20');
