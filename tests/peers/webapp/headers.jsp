<%--
  Sets fixed response headers and cookies: X-Pyhttpd-Test once, X-Pyhttpd-Multi twice,
  cookies "alpha=1" (Path=/) and "beta=2" (HttpOnly).
--%>
<%@ page contentType="text/plain; charset=UTF-8" trimDirectiveWhitespaces="true" session="false" %>
<%
    response.setHeader("X-Pyhttpd-Test", "yes");
    response.addHeader("X-Pyhttpd-Multi", "one");
    response.addHeader("X-Pyhttpd-Multi", "two");
    jakarta.servlet.http.Cookie alpha = new jakarta.servlet.http.Cookie("alpha", "1");
    alpha.setPath("/");
    response.addCookie(alpha);
    jakarta.servlet.http.Cookie beta = new jakarta.servlet.http.Cookie("beta", "2");
    beta.setHttpOnly(true);
    response.addCookie(beta);
    out.print("headers=set\n");
%>
