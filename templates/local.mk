## templates/local.mk — files the emitter copies into every output directory.
templatesdir = $(pkgdatadir)/templates
dist_templates_DATA = \
	%D%/Makefile.in.tmpl \
	%D%/Makefile.cuda.tmpl \
	%D%/run.tmpl \
	%D%/rank.c.tmpl
