package console

import (
	"net/http"
	"strings"

	"golang.org/x/text/language"
)

// lang is a console language: English (the keys themselves) or
// Simplified Chinese.
type lang struct {
	// Tag is the BCP 47 tag, for <html lang>.
	Tag string
	// words maps English text to its translation; nil for English.
	words map[string]string
}

// T translates s; text without a translation stays English.
func (l *lang) T(s string) string {
	if t, ok := l.words[s]; ok {
		return t
	}
	return s
}

var (
	english = &lang{Tag: "en"}
	chinese = &lang{Tag: "zh-CN", words: zhCN}
	// supported are the languages offered, English first (the fallback).
	supported = language.NewMatcher([]language.Tag{language.English, language.SimplifiedChinese})
)

// langCookie remembers the language chosen with the switch.
const langCookie = "posfleet_lang"

// pickLang chooses the language: the switch's cookie, else the browser's
// Accept-Language.
func pickLang(r *http.Request) *lang {
	accept := r.Header.Get("Accept-Language")
	if ck, err := r.Cookie(langCookie); err == nil {
		accept = ck.Value
	}
	tag, _ := language.MatchStrings(supported, accept)
	if base, _ := tag.Base(); base.String() == "zh" {
		return chinese
	}
	return english
}

// setLang is the language switch: GET /lang/{en|zh-CN}?back=PATH.
func (c *Console) setLang(w http.ResponseWriter, r *http.Request) {
	l := r.PathValue("lang")
	if l != "en" && l != "zh-CN" {
		http.NotFound(w, r)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600, SameSite: http.SameSiteLaxMode, Secure: c.cfg.Secure, HttpOnly: true})
	back := r.URL.Query().Get("back")
	// Only a path of this site: never an open redirect.
	if !strings.HasPrefix(back, "/") || strings.HasPrefix(back, "//") || strings.Contains(back, "\\") {
		back = "/"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}
