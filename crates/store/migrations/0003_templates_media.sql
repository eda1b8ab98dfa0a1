-- The template cache keeps Meta's whole template object (components included) so sends can
-- be checked and templates listed without a Graph call; media uploaded through the proxy
-- is kept with the file that was sent to Meta.
ALTER TABLE templates ADD COLUMN body TEXT;
ALTER TABLE templates ADD COLUMN parameter_format TEXT;
CREATE INDEX templates_by_name ON templates(business_account_id, name, language);
ALTER TABLE media ADD COLUMN origin TEXT NOT NULL DEFAULT 'inbound';
CREATE INDEX media_by_meta_id ON media(meta_media_id);
